"""Pushing llmcost's own alerts to Alertmanager (API v2), as a Prometheus rule evaluator does.

With `alertmanager: {url: …}` (or `urls: […]`) configured, the budget and spike alerts are not sent
to the gateway directly: `AlertmanagerSink` records them in `alertmanager_alerts` and `Pusher` posts
them to every Alertmanager replica, where they can be queried, silenced, inhibited and routed. The
shipped `alertmanager.yml` routes them back to llmcost's gateway (`POST /v1/alertmanager`), which
recognises them by their `llmcost_origin` label and notifies once (see `docs/alerting-paths.md`).
"""
