"""The console's routes: the page at `/`, the alerts fragment, and its stylesheet and script.

Who may see and do what, mirroring the API:
- Spend, budgets and spikes are the figures `/metrics` exposes: on the page for anyone who can reach
  it while `/metrics` is open; once `auth.metrics_tokens` guards `/metrics`, only for a request
  bearing a metrics or admin token. Without one the page keeps its sections but not their content
  (no names, no figures), says why, and its script fetches the page again with the token the person
  entered.
- Alerts (labels, summaries, who acknowledged) are what `GET /v1/alerts` guards with
  `auth.admin_tokens`: with tokens configured, the page leaves them out and its script fetches
  `/console/alerts` with the token the person entered (kept in `sessionStorage`, sent as a bearer header).
- Acknowledge / Unacknowledge call `POST /v1/alerts/{id}/ack|unack`, the API itself, with its checks.
  Without admin tokens the page offers them only when the server listens on loopback alone (the API
  is open then, as today); listening elsewhere without admin tokens, the page is read-only.

Why no CSRF token: the console authenticates with a bearer header set by its own script, never a
cookie, so a forged cross-site request carries no credentials. Where no token is configured (loopback
only), the ack endpoints refuse browser requests from other origins and from non-loopback names
themselves (`exporter.http.origin`), which also stops DNS rebinding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from alerting.budgets.amounts import usd
from alerting.console.history import DIMENSIONS, SpendHistory
from alerting.console.view import (
    DIMENSION_TITLES,
    budget_rows,
    budget_zones,
    current_alerts,
    day_chart,
    firing_spikes,
    month_chart,
    one_budget_rows,
    top_shares,
    usage_totals,
    zone_or,
    zone_spend,
)
from alerting.links import budget_anchor, budget_page, budget_path, instance_anchor
from alerting.notify.templating import dashboard_link
from alerting.notify.text_limits import visible, web_url
from alerting.periods import period_bounds
from exporter import __version__
from exporter.http.auth import bearer_allowed, check_bearer, followable
from exporter.http.errors import error
from exporter.server import is_loopback, parse_listen
from exporter.store import StoreUnavailable

if TYPE_CHECKING:
    from alerting.budgets.service import BudgetService
    from alerting.gateway.service import GatewayService
    from exporter.services import Services

TZ_COOKIE = "llmcost_tz"
SECURITY_HEADERS = {
    # Our own script and stylesheet only; inline SVG needs no more. No framing, no form posts.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_RETRY = 15
"""Seconds after which the page shown while the store does not answer asks for the console again."""
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("alerting.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Alert labels are whatever Alertmanager's rules said: bidi and zero-width characters are shown as
        # `[U+202E]`, so a name reads as what it holds. Markup (the charts' SVG, escaped already) is left alone.
        finalize=lambda v: visible(v) if type(v) is str else v,
    )
    env.filters["money"] = usd
    env.filters["pct"] = lambda v: f"{v:.0%}" if v is not None else "—"
    env.filters["budget_path"] = budget_path
    env.filters["budget_anchor"] = budget_anchor
    env.filters["budget_page"] = budget_page
    env.filters["instance_anchor"] = instance_anchor
    # An alert's own links, as its notifications carry them: http(s) only (an annotation received from
    # Alertmanager is whatever its rule said), the dashboard around the alert's time.
    env.filters["runbook_link"] = lambda alert: web_url(alert.annotations.get("runbook_url", ""))
    env.filters["dashboard_link"] = dashboard_link
    env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t else "—"
    return env


class Console:
    """Renders the console for one `Services`; routes come from `routes()`."""

    def __init__(
        self,
        services: Services,
        budgets: BudgetService,
        gateway: GatewayService,
        *,
        history: SpendHistory | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.services = services
        self.budgets = budgets
        self.gateway = gateway
        self.clock = clock or services.clock
        self.history = history or SpendHistory(services.store, clock=self.clock)
        self.env = _environment()
        self.static = {
            name: resources.files("alerting.console").joinpath("static", name).read_bytes() for name in STATIC
        }
        self._can_act = self._may_act()

    @property
    def figure_tokens(self) -> list[str]:
        """The tokens that show spend, budgets and spikes: none while `/metrics` is open to all.

        An admin token shows them too: its holder may already read budgets and alerts through the API.
        """
        auth = self.services.config.auth
        return [*auth.metrics_tokens, *auth.admin_tokens] if auth.metrics_tokens else []

    @property
    def admin_tokens(self) -> list[str]:
        """The tokens guarding alerts and acks (none: open, as the API)."""
        return self.services.config.auth.admin_tokens

    def followable(self) -> dict[str, bool]:
        """Which of the server's endpoints the page may link to (`exporter.http.auth.followable`).

        The console's token lives in its script, so a plain link to a guarded endpoint would answer 401.
        """
        return followable(self.services.config.auth)

    def can_act(self) -> bool:
        """Whether the page offers Acknowledge: with admin tokens, or else on a loopback-only listener."""
        return self._can_act

    def _may_act(self) -> bool:
        # Decided once: the listen address and tokens do not change while the process runs.
        if self.admin_tokens:
            return True
        try:
            host, _port = parse_listen(self.services.config.listen)
        except ValueError:
            return False
        return is_loopback(host)

    def warm_up(self) -> None:
        """Start reading the spend history in the background (a serving process calls this at start)."""
        self.history.warm_up()

    def close(self) -> None:
        """Stop the history's background reload."""
        self.history.close()

    # ---- rendering -----------------------------------------------------------------------------------

    def page_context(
        self,
        *,
        by: str,
        viewer_zone: str | None,
        with_alerts: bool,
        budget: str | None = None,
        with_figures: bool = True,
    ) -> dict[str, Any]:
        """Everything the page template needs (blocking: runs in a worker thread).

        With `budget`, the page of that budget alone: every instance of it listed (up to
        `MAX_BUDGET_INSTANCES`), where the main page lists the highest `MAX_INSTANCES`.
        Without `with_figures`, nothing of spend, budgets or spikes is read (see `hidden_context`).
        """
        now = self.clock()
        if not with_figures:
            return self.hidden_context(now, by=by, with_alerts=with_alerts, budget=budget)
        history = self.history.snapshot(now)
        definitions = self.budgets.definitions()
        zones = budget_zones(definitions)
        wildcards = {b.name for b in definitions if b.key == "*"}
        primary = zones[0]
        chart_zone = zone_or(viewer_zone, primary)
        month_from = period_bounds("monthly", datetime.fromtimestamp(now, UTC), primary)[0].timestamp()
        tops = {d: top_shares(history, d, month_from, now + 1) for d in DIMENSIONS}
        day, day_stacks = day_chart(history, by, now)
        month, month_stacks = month_chart(history, by, now, chart_zone)
        spikes, more_spikes = firing_spikes(self.services.store, history, now)
        config = self.services.config
        statuses = self.budgets.listing(now)
        return {
            "version": __version__,
            "now": int(now),
            "zones": zone_spend(history, zones, now),
            "primary_zone": primary,
            "totals": usage_totals(self.services.store),
            "tops": tops,
            "dimensions": DIMENSIONS,
            "titles": DIMENSION_TITLES,
            "by": by,
            "day_chart": day,
            "day_stacks": day_stacks,
            "month_chart": month,
            "month_stacks": month_stacks,
            "chart_zone": chart_zone,
            "budgets": budget_rows(statuses, wildcards)
            if budget is None
            else one_budget_rows(statuses, wildcards, budget),
            "focus": budget,
            "spikes": spikes,
            "more_spikes": more_spikes,
            "alerts_context": self.alerts_context(now) if with_alerts else None,
            "figures_hidden": False,
            "needs_token": bool(self.admin_tokens),
            "can_act": self.can_act(),
            "grafana_url": config.grafana_url,
            **self.followable(),
        }

    def hidden_context(self, now: float, *, by: str, with_alerts: bool, budget: str | None) -> dict[str, Any]:
        """The page without its figures, for a request without a metrics or admin token.

        Only what the request itself says (`by`, `budget`) and the alerts as for any page; the store
        and the budgets are not read, so not even whether a budget exists shows (no 404 here).
        """
        config = self.services.config
        return {
            "version": __version__,
            "now": int(now),
            "by": by,
            "dimensions": DIMENSIONS,
            "focus": budget,
            "alerts_context": self.alerts_context(now) if with_alerts else None,
            "figures_hidden": True,
            "needs_token": bool(self.admin_tokens),
            "can_act": self.can_act(),
            "grafana_url": config.grafana_url,
            **self.followable(),
        }

    def alerts_context(self, now: float | None = None) -> dict[str, Any]:
        """The alerts section's data."""
        now = self.clock() if now is None else now
        listed = current_alerts(self.gateway, now)
        return {
            "alerts": listed.alerts,
            "more": listed.more,
            "can_act": self.can_act(),
            "now": int(now),
            **self.followable(),
        }

    # ---- routes --------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """`/`, `/console/alerts` and the two static files."""

        async def page(request: Request) -> Response:
            by = request.query_params.get("by", "project")
            if by not in DIMENSIONS:
                by = "project"
            budget = request.query_params.get("budget")  # one budget's page, with all its instances
            # With admin tokens the alerts come in by script, with the person's token; else inline.
            with_alerts = bearer_allowed(request, self.admin_tokens)
            # With `/metrics` guarded, its figures need its token (or an admin one) here too.
            with_figures = bearer_allowed(request, self.figure_tokens)
            try:
                context = await run_in_threadpool(
                    self.page_context,
                    by=by,
                    # The script percent-encodes the zone (`America%2FNew_York`): decoded here, or no
                    # zone with a "/" (all but UTC) would ever be recognised.
                    viewer_zone=unquote(request.cookies.get(TZ_COOKIE) or "") or None,
                    with_alerts=with_alerts,
                    budget=budget,
                    with_figures=with_figures,
                )
            except StoreUnavailable:
                # A person, not a client, asked: a page saying what is wrong and where to look (the JSON
                # error the API answers would be all they saw), still a 503 with Retry-After.
                html = self.env.get_template("unavailable.html.j2").render(
                    version=__version__,
                    grafana_url=self.services.config.grafana_url,
                    retry_seconds=PAGE_RETRY,
                    **self.followable(),
                )
                return HTMLResponse(html, status_code=503, headers={**SECURITY_HEADERS, "Retry-After": "5"})
            html = self.env.get_template("console.html.j2").render(**context)
            # A stale link (a deleted or renamed budget) still gets the page, saying there is no such budget.
            missing = budget is not None and with_figures and not context["budgets"]
            return HTMLResponse(html, status_code=404 if missing else 200, headers=SECURITY_HEADERS)

        async def alerts(request: Request) -> Response:
            denied = check_bearer(request, self.admin_tokens, "auth.admin_tokens")
            if denied is not None:
                return denied
            try:
                context = await run_in_threadpool(self.alerts_context)
            except StoreUnavailable:
                return error(503, "store unavailable, retry later", headers={"Retry-After": "5"})
            html = self.env.get_template("alerts.html.j2").render(**context)
            return HTMLResponse(html, headers=SECURITY_HEADERS)

        def static(name: str) -> Callable[[Request], Any]:
            async def serve(_request: Request) -> Response:
                return Response(
                    self.static[name],
                    media_type=STATIC[name],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
                )

            return serve

        return [
            Route("/", page, methods=["GET"]),
            Route("/console/alerts", alerts, methods=["GET"]),
            *(Route(f"/console/{name}", static(name), methods=["GET"]) for name in STATIC),
        ]
