"""The alert gateway: dedup, lifecycle, durable outbox and fan-out to Slack, email and PagerDuty.

The service is `alerting.gateway.service.GatewayService`; this package's `__init__` imports nothing, so
that `llmcost` loads the gateway only for the commands that use it (`alerts` lives in `cli.py` here).
"""
