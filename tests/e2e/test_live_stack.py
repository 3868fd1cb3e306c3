"""Live end-to-end: llmcost, Prometheus and Alertmanager for real, on loopback, fed a real trace.

What runs, and what differs from the shipped configuration (and why):

- llmcost (`llmcost serve`, SQLite) with tokens for ingest, admin and the Alertmanager webhook, the demo's
  three budgets (`exporter.demo.DEMO_CONFIG`), Slack pointing at a recording `SlackAPIServer` with every
  severity routed to it, and spike detection every second with a 5-minute window compared with the 30
  minutes before it (default: every minute, a 30-minute window against 7 days of history), so that a
  trace of one hour already gives every watched series a baseline; besides the default series it
  watches each of the trace's 40 users (`[user]`).
- The bundled Azure trace (`exporter.demo`), its calls timed to end now: the first 10 minutes before
  Prometheus starts, the other 50 after its first scrape (so `increase()` sees them arrive; it includes
  an unpriced self-hosted model), then the trace again in real time for the rest of the test, so rates,
  budget burn and the spike window keep moving.
- Prometheus with the shipped `prometheus.yml` and rule files, derived by `tests/support/live_stack.py` (on top
  of `scripts/stack.py`): targets rewritten to loopback ports; scrape and evaluation intervals 1 s
  instead of 30 s; rule groups without their own `interval:` (`llmcost-usage-daily` evaluates every 2
  minutes in production, too slow for this test); `LLMCostUnpricedModel`'s `for:` shortened from 5m to
  2s in the rewritten copy of the rule, so that it fires within seconds but still passes through pending.
- Alertmanager with the shipped `alertmanager.yml`: the gateway webhook URL rewritten to llmcost's port,
  its token in a `credentials_file`, and group_wait 1s / group_interval 1s / repeat_interval 2s instead
  of seconds to hours, so that it delivers quickly and re-sends the firing alert within the test.

Asserted: every dashboard panel and variable query and every recording rule returns data from the live
Prometheus (one justified exclusion, checked in a weaker form); the shipped alert fires, goes through
Alertmanager to the gateway and reaches Slack exactly once although Alertmanager re-sends it; acking it
through the HTTP API updates that Slack message. And what Grafana would show of it: tables that merge
several queries have one row per series, every series a panel draws has its own legend, and every
value a panel shows can be picked in the dashboard's filter variables.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.demo import DEMO_CONFIG
from tests.support import live_stack
from tests.support import monitoring_assets as assets
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import RecordedRequest, Response, SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

ADMIN_TOKEN = "live-admin-token-0123456789abcdef"
INGEST_TOKEN = "live-ingest-token-0123456789abcdef"
WEBHOOK_TOKEN = "live-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-live-stack-test-token"
SLACK_SIGNING_SECRET = "live-slack-signing-secret-0123456789"

ALERT = "LLMCostUnpricedModel"
INTERVAL = 1.0
FOR_OVERRIDES = {ALERT: "2s"}
ALERTMANAGER_TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
EARLY_HISTORY_SECONDS = 600.0

# Queries that cannot have data in a run of seconds whatever the environment does, with why. Each is
# checked in a weaker form instead (see `weaker`).
NO_DATA_IN_A_SHORT_RUN = {
    ("llmcost-overview", "Spend this month [A]"): (
        "samples the rate5m rule on a 5-minute subquery step, which Prometheus aligns to whole multiples of "
        "5 minutes: it has data once the rule has been recorded across such a boundary, which a run of "
        "seconds reaches only by chance"
    ),
}


def weaker(expr: str) -> str:
    """An excluded query with its subquery step at the scrape interval: everything but the alignment."""
    assert ":5m])" in expr, expr
    return expr.replace(":5m])", f":{INTERVAL:g}s])")


class AnsweringSlackServer(SlackAPIServer):
    """The recording Slack API, remembering its answers too (the `ts` of each posted message)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: dict[int, dict[str, Any]] = {}

    def default_response(self, request: RecordedRequest) -> Response:
        response = super().default_response(request)
        self.answers[id(request)] = dict(response.body) if isinstance(response.body, dict) else {}
        return response

    def answer(self, request: RecordedRequest) -> dict[str, Any]:
        return self.answers[id(request)]


@dataclass
class LiveStack:
    """The running stack: llmcost, Prometheus and Alertmanager URLs, the Slack recorder and the feed."""

    llmcost: LlmcostProcess
    prometheus: str
    alertmanager: str
    slack: AnsweringSlackServer
    feed: Any
    workdir: Path

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def diagnostics(self) -> str:
        """What each part saw, for failure messages."""
        parts = []
        for title, call in (
            ("Prometheus ALERTS", lambda: live_stack.instant_query(self.prometheus, "ALERTS")),
            ("Alertmanager alerts", lambda: httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()),
            ("gateway alerts", lambda: httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.admin()).json()),
            ("Slack calls", lambda: [(r.path, r.payload.get("text")) for r in self.slack.requests]),
        ):
            try:
                parts.append(f"{title}: {json.dumps(call(), default=str)[:3000]}")
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                parts.append(f"{title}: unavailable ({exc})")
        for log in sorted(self.workdir.rglob("*.log")):
            parts.append(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


def llmcost_config(slack: SlackAPIServer) -> dict[str, Any]:
    return {
        "auth": {
            "ingest_tokens": [INGEST_TOKEN],
            "admin_tokens": [ADMIN_TOKEN],
            "webhook_tokens": [WEBHOOK_TOKEN],
        },
        "budgets": DEMO_CONFIG["budgets"],
        "detection": {
            "interval_seconds": 1,
            "window_minutes": 5,
            "short_windows_minutes": [],
            "recent_minutes": 30,
            # The default series and the demo's 40 users, whose spike series differ by `user` alone.
            "series": [[], ["project"], ["provider", "model"], ["user"]],
        },
        "notifications": {
            "slack": {
                "token": SLACK_TOKEN,
                "channel": "#llm-cost",
                "api_url": slack.api_url,
                "signing_secret": SLACK_SIGNING_SECRET,
            },
            "routes": {"info": ["slack"], "warning": ["slack"], "critical": ["slack"]},
        },
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The whole stack, started once for this module and stopped however the tests end."""
    workdir = tmp_path_factory.mktemp("live-stack")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(AnsweringSlackServer(token=SLACK_TOKEN))
        config = workdir / "llmcost.yml"
        config.write_text(yaml.safe_dump(llmcost_config(slack)), encoding="utf-8")
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)

        llmcost = LlmcostProcess(f"sqlite:///{workdir / 'llmcost.db'}", config=config)
        cleanup.callback(llmcost.stop)
        llmcost.start(workdir)
        ports = live_stack.Ports(llmcost.port, *live_stack.free_ports(2, taken=(llmcost.port,)))

        feed = live_stack.TraceFeed(llmcost.base, headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
        cleanup.callback(feed.stop)
        early, late = feed.history_parts(EARLY_HISTORY_SECONDS)
        assert feed.post(early)["accepted"] == len(early)

        live_stack.start_alertmanager(
            cleanup, workdir / "alertmanager", ports, credentials_file=token_file, timings=ALERTMANAGER_TIMINGS
        )
        rules = live_stack.fast_rule_files(workdir / "rules", FOR_OVERRIDES)
        prometheus = live_stack.prometheus_server(workdir / "prometheus", ports, rule_files=rules, interval=INTERVAL)
        cleanup.callback(prometheus.stop)
        prometheus.start()

        stack = LiveStack(llmcost, ports.url("prometheus"), ports.url("alertmanager"), slack, feed, workdir)
        assert live_stack.wait_until(lambda: live_stack.scraped(stack.prometheus, "llmcost"), 30), stack.diagnostics()
        assert feed.post(late)["accepted"] == len(late)
        feed.start()
        yield stack


def slack_posts(slack: AnsweringSlackServer, alertname: str) -> list[RecordedRequest]:
    """Every `chat.postMessage` about an alert (answered already), thread replies included."""
    posts = [
        r
        for r in slack.calls("chat.postMessage")
        if alertname in str(r.payload.get("text", "")) and id(r) in slack.answers
    ]
    threads = {slack.answer(r)["ts"] for r in posts}
    replies = [r for r in slack.calls("chat.postMessage") if r.payload.get("thread_ts") in threads]
    return posts + [r for r in replies if r not in posts]


def ack_button_value(post: RecordedRequest) -> str:
    """The alert id the message's Acknowledge button carries."""
    blocks = post.payload.get("blocks")
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    for block in blocks or []:
        for element in block.get("elements", []):
            if element.get("action_id") == "llmcost_ack":
                return str(element["value"])
    raise AssertionError(f"no Acknowledge button in {blocks}")


@pytest.fixture(scope="module")
def first_post(live: LiveStack) -> RecordedRequest:
    """The Slack message of the shipped alert, once it has travelled Prometheus → Alertmanager → gateway."""
    arrived = live_stack.wait_until(lambda: bool(slack_posts(live.slack, ALERT)), timeout=45)
    assert arrived, f"{ALERT} never reached Slack\n{live.diagnostics()}"
    return slack_posts(live.slack, ALERT)[0]


def gateway_alert(live: LiveStack, alert_id: str) -> dict[str, Any]:
    response = httpx.get(f"{live.llmcost.base}/v1/alerts/{alert_id}", headers=live.admin(), timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_shipped_alert_fires_through_alertmanager_and_reaches_slack_exactly_once(
    live: LiveStack, first_post: RecordedRequest
) -> None:
    alert = gateway_alert(live, ack_button_value(first_post))
    assert alert["alertname"] == ALERT
    assert alert["severity"] == "info"
    # Labels of the shipped rule's expression and severity, plus Prometheus's external label: it came
    # from Prometheus through Alertmanager, not from llmcost's own scheduler.
    assert {k: alert["labels"].get(k) for k in ("provider", "model", "job", "severity", "monitor")} == {
        "provider": "self-hosted",
        "model": "llama-3.1-8b-internal",
        "job": "llmcost",
        "severity": "info",
        "monitor": "llmcost",
    }
    assert alert["annotations"]["runbook_url"] == "http://localhost:9800/runbook#llmcostunpricedmodel"

    # Alertmanager keeps re-sending the firing group (repeat_interval 2s): the gateway deduplicates.
    def webhook_sends() -> float:
        return live_stack.metric_value(live.alertmanager, "alertmanager_notifications_total", integration="webhook")

    sent = webhook_sends()
    assert live_stack.wait_until(lambda: webhook_sends() >= sent + 2, timeout=20), live.diagnostics()
    failed = live_stack.metric_value(
        live.alertmanager, "alertmanager_notifications_failed_total", integration="webhook"
    )
    assert failed == 0, live.diagnostics()
    drained = live_stack.wait_until(
        lambda: live_stack.metric_value(live.llmcost.base, "llm_notification_outbox_pending", channel="slack") == 0,
        timeout=10,
    )
    assert drained, live.diagnostics()
    assert slack_posts(live.slack, ALERT) == [first_post], live.diagnostics()
    ts = live.slack.answer(first_post)["ts"]
    assert not [r for r in live.slack.calls("chat.update") if r.payload.get("ts") == ts], "edited before any ack"


def test_the_shipped_alerts_slack_message_opens_its_dashboard_on_the_model(first_post: RecordedRequest) -> None:
    """The stack alerts had no `dashboard_url`: their Slack message (and mail, PagerDuty page) came without the
    Dashboard button that budget and spike alerts have. The shipped rule's link opens the Spend overview, which
    lists the unpriced calls, filtered on the model, on the compose stack's Grafana (as its `grafana_url`)."""
    blocks = first_post.payload.get("blocks")
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    buttons = {e["text"]["text"]: e["url"] for b in blocks or [] for e in b.get("elements", []) if "url" in e}
    assert "Dashboard" in buttons, buttons
    link = urllib.parse.urlsplit(buttons["Dashboard"])
    assert (link.scheme, link.netloc, link.path) == ("http", "localhost:3000", "/d/llmcost-overview")
    query = urllib.parse.parse_qs(link.query)
    assert query["var-provider"] == ["self-hosted"] and query["var-model"] == ["llama-3.1-8b-internal"], query
    assert query["to"] == ["now"] and int(query["from"][0]) < time.time() * 1000  # around the alert's start
    [board] = [b for b in assets.dashboards().values() if b["uid"] == "llmcost-overview"]
    assert {"provider", "model"} <= {v["name"] for v in board["templating"]["list"]}


def test_acking_the_alert_through_the_api_updates_its_slack_message(
    live: LiveStack, first_post: RecordedRequest
) -> None:
    alert_id = ack_button_value(first_post)
    ts = live.slack.answer(first_post)["ts"]
    response = httpx.post(
        f"{live.llmcost.base}/v1/alerts/{alert_id}/ack", json={"by": "tester"}, headers=live.admin(), timeout=10
    )
    assert response.status_code == 200, response.text
    assert gateway_alert(live, alert_id)["acknowledged_by"] == "tester"

    def updates() -> list[RecordedRequest]:
        return [r for r in live.slack.calls("chat.update") if r.payload.get("ts") == ts]

    assert live_stack.wait_until(lambda: bool(updates()), timeout=15), live.diagnostics()
    update = updates()[0]
    assert "tester" in json.dumps(update.payload)
    assert update.payload.get("channel") == live.slack.answer(first_post)["channel"]
    assert slack_posts(live.slack, ALERT) == [first_post]


def test_every_dashboard_query_and_recording_rule_returns_live_data(live: LiveStack) -> None:
    queries: dict[str, str] = {}
    for query in assets.live_queries():
        key = (query.source, query.name)
        if key in NO_DATA_IN_A_SHORT_RUN:
            queries[f"{query.source}: {query.name} (weaker form)"] = weaker(query.expr)
        else:
            queries[f"{query.source}: {query.name}"] = query.expr
    # The recorded series themselves: Prometheus evaluated each shipped rule, not only its expression.
    queries.update({f"recorded series {name}": name for name in assets.recording_rules()})
    excluded = {(q.source, q.name) for q in assets.live_queries()} & set(NO_DATA_IN_A_SHORT_RUN)
    assert excluded == set(NO_DATA_IN_A_SHORT_RUN), "an exclusion names a query that no longer exists"

    missing: dict[str, str] = dict(queries)

    def all_answered() -> bool:
        for name, expr in list(missing.items()):
            if live_stack.instant_query(live.prometheus, expr):
                del missing[name]
        return not missing

    def report() -> str:
        listing = "\n".join(f"  {name}: {expr}" for name, expr in sorted(missing.items()))
        hint = ""
        if "llm_scheduler_runs_total" not in httpx.get(f"{live.llmcost.base}/metrics", timeout=5).text:
            hint = (
                "\nllmcost exposes no llm_scheduler_* series: `llmcost serve` runs no scheduler (detection, budgets)."
            )
        return f"{len(missing)} of {len(queries)} queries returned no data:\n{listing}{hint}"

    wait_until(all_answered, timeout=45, interval=1, what=report)


# Doc queries that cannot return data on this stack, with why, and the form checked instead (which must return
# data), or None: parsed only (tests/assets/test_prometheus_rules.py).
DOC_QUERIES_WITHOUT_DATA: dict[str, tuple[str, str | None]] = {
    'absent(up{job="llmcost"})': (
        "answers only while Prometheus has no llmcost target (LLMCostExporterAbsent)",
        'absent(up{job="no-such-job"})',
    ),
    "count by (job) (last_over_time(up[1d])) unless count by (job) (up)": (
        "answers only while a job scraped within the day has no target (LLMCostExporterAbsent)",
        'count by (job) (last_over_time(up[1d])) unless count by (job) (up{job="no-such-job"})',
    ),
    "sum by (outcome) (increase(llm_ingest_events_total[1h] offset 1d))": (
        "looks a day back; the stack is minutes old",
        "sum by (outcome) (increase(llm_ingest_events_total[1h]))",
    ),
    "budget:llm_budget_projected_usage:ratio > 1": (
        "answers only while a budget is projected past its limit, which the demo's hourly and daily budgets are "
        "not early in their period",
        "budget:llm_budget_projected_usage:ratio > 0",
    ),
    'sum by (alertmanager, outcome) (increase(llm_alertmanager_pushes_total{job="llmcost"}[15m]))': (
        "llmcost here takes the direct path (no `alertmanager:` in its config), so it pushes nothing; "
        "`make stack` takes the Alertmanager path and answers it",
        None,
    ),
    "sum by (project) (llm_cost_usd_total @ 1796112000) - (sum by (project) (llm_cost_usd_total @ 1793516400) "
    "or 0 * sum by (project) (llm_cost_usd_total @ 1796112000))": (
        "reads November 2026, before the stack started; checked at the query's own time instead",
        "sum by (project) (llm_cost_usd_total @ end()) - (sum by (project) (llm_cost_usd_total @ start()) "
        "or 0 * sum by (project) (llm_cost_usd_total @ end()))",
    ),
    'llm_spend_spike_ratio{job="llmcost"} > 1': (
        "answers only while a spend spike is under way",
        'llm_spend_spike_ratio{job="llmcost"} > 0',
    ),
}


def bare(expr: str) -> str:
    """A query without its `# comments`, on one line."""
    return " ".join(re.sub(r"#[^\n]*", "", expr).split())


def test_every_promql_query_in_the_docs_returns_live_data(live: LiveStack) -> None:
    """What a reader pastes from README.md and docs/ into Prometheus answers, placeholders filled in."""
    values = {"budget": "daily-total", "key": "code-assist", "project": "code-assist", "model": "gpt-4o"}
    queries: dict[str, str] = {}
    for query in assets.doc_queries(values):
        if bare(query.expr) in DOC_QUERIES_WITHOUT_DATA:
            instead = DOC_QUERIES_WITHOUT_DATA[bare(query.expr)][1]
            if instead is not None:
                queries[f"{query.source} (checked as)"] = instead
        else:
            queries[query.source] = query.expr
    used = {bare(q.expr) for q in assets.doc_queries(values)}
    assert set(DOC_QUERIES_WITHOUT_DATA) <= used, "an exclusion names a query the docs no longer have"
    missing = dict(queries)

    def all_answered() -> bool:
        for name, expr in list(missing.items()):
            if live_stack.instant_query(live.prometheus, expr):
                del missing[name]
        return not missing

    def report() -> str:
        listing = "\n".join(f"  {name}: {expr}" for name, expr in sorted(missing.items()))
        return f"{len(missing)} of {len(queries)} doc queries returned no data:\n{listing}"

    wait_until(all_answered, timeout=45, interval=1, what=report)


def query_at(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    """An instant query at a fixed time, as Grafana sends every query of one panel refresh."""
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr, "time": at}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def identity(metric: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """What tells one series from another on a panel: its labels without the metric name."""
    return frozenset((k, v) for k, v in metric.items() if k != "__name__")


def test_every_table_that_merges_its_queries_shows_one_row_per_series(live: LiveStack) -> None:
    """Grafana's merge joins the queries' rows on their shared columns: a `__name__` column on some
    queries only (a recorded series selected as it is) splits one budget into several rows."""
    tables = [
        (board["uid"], panel)
        for board in assets.dashboards().values()
        for panel in assets.panels(board)
        if panel["type"] == "table" and any(t["id"] == "merge" for t in panel.get("transformations", []))
    ]
    assert tables
    for uid, panel in tables:
        targets = panel["targets"]
        exprs = {target["refId"]: assets.substitute(target["expr"]) for target in targets}
        answered = live_stack.wait_until(
            lambda exprs=exprs: all(live_stack.instant_query(live.prometheus, e) for e in exprs.values()), timeout=45
        )
        assert answered, f"{uid} / {panel['title']}: a query has no data\n{live.diagnostics()}"
        at = time.time()
        frames, series = [], set()
        for ref, expr in exprs.items():
            result = query_at(live.prometheus, expr, at)
            frames.append(assets.table_frame(result, f"Value #{ref}" if len(exprs) > 1 else "Value"))
            series |= {identity(s["metric"]) for s in result}
        rows = assets.merge_frames(frames)
        listing = "\n".join(f"  {row}" for row in rows)
        assert len(rows) == len(series), (
            f"{uid} / {panel['title']}: {len(series)} series in {len(rows)} rows\n{listing}"
        )


def test_every_series_a_panel_draws_has_a_legend_of_its_own(live: LiveStack) -> None:
    """Two lines or bars with the same legend cannot be told apart (budgets with `key: "*"` have one
    series per key; spike series watched by `user` differ by that label alone)."""
    live_stack.wait_until(
        lambda: bool(live_stack.instant_query(live.prometheus, 'llm_spend_window_usd{job="llmcost", user!=""}')), 45
    )
    clashes = []
    for board in assets.dashboards().values():
        for panel in assets.panels(board):
            legends: Counter[str] = Counter()
            for target in panel.get("targets", []):
                legend = target.get("legendFormat", "")
                if legend in ("", "__auto") or target.get("format") == "table":
                    continue
                for sample in live_stack.instant_query(live.prometheus, assets.substitute(target["expr"])):
                    legends[assets.render_legend(legend, sample["metric"])] += 1
            clashes += [
                f"{board['uid']} / {panel['title']}: {n} series named {name!r}" for name, n in legends.items() if n > 1
            ]
    assert not clashes, "\n".join(clashes)


def test_filter_variables_offer_every_value_the_panels_show(live: LiveStack) -> None:
    """A variable's options are the label values of its query over the dashboard's range (Grafana's
    label_values): a value a panel shows but the variable does not offer cannot be selected. A project
    new in the detection window has spend but no baseline yet, so no spike ratio."""
    event = {
        "request_id": f"fresh-{uuid.uuid4()}",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "project": "fresh-project",
        "service": "api",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.01,
    }
    assert live.feed.post([event])["accepted"] == 1
    window = 'llm_spend_window_usd{job="llmcost", project="fresh-project"}'
    assert live_stack.wait_until(lambda: bool(live_stack.instant_query(live.prometheus, window)), 45), window
    end = time.time()
    missing = []
    for board in assets.dashboards().values():
        options: dict[str, set[str]] = {}
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            selector, label = assets.label_values_arguments(variable)
            response = httpx.get(
                f"{live.prometheus}/api/v1/label/{label}/values",
                params={"match[]": assets.substitute(selector), "start": end - 86400, "end": end},
                timeout=10,
            ).json()
            options[label] = set(response["data"])
        for query in assets.dashboard_queries(board):
            for sample in live_stack.instant_query(live.prometheus, assets.substitute(query.expr)):
                for label, offered in options.items():
                    value = sample["metric"].get(label, "")
                    if value and value not in offered:
                        missing.append(f"{board['uid']} / {query.name}: {label}={value!r} is not offered")
    assert not missing, "\n".join(sorted(set(missing)))
