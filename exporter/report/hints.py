"""Efficiency hints: what a team lead could change, each with the money at stake and its figures.

Every hint is computed from the report's rows (rollups) and the price table, and carries the numbers
it rests on, so a reader can check it rather than take it on trust:

- `cheaper_model`: a project's calls to a model whose cheaper sibling (same provider) another project
  uses for similar traffic (average input and output per call within a factor of two); at stake: the
  cost of the project's calls minus what they would cost at the sibling's price.
- `prompt_caching`: a model whose price has a cheaper cache-read rate, called with long inputs
  (at least `LONG_INPUT_TOKENS` uncached input tokens per call on average) and almost no cache reads;
  at stake: what reading half of that input from the cache would save (the half is an assumption,
  stated in the figures; repeated prefixes are typical of system prompts and tool definitions).
- `unpriced`: calls stored at cost 0 because the model has no price; at stake: unknown (not counted).
  Only raw events can be repriced: calls older than the raw-event retention are said to be past it.
- `growth`: the projects whose spend grew most in the last 7 days over the 7 days before.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.events import nanos_to_usd
from exporter.pricing import PriceBook
from exporter.report.query import Row, Totals, first_unpriced_bucket, unpriced_calls
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS

LONG_INPUT_TOKENS = 1024  # the smallest prompt Anthropic and OpenAI cache
MIN_CALLS = 10
SIMILAR_FACTOR = 2.0
WEEK = 7 * 86_400


@dataclass
class Hint:
    """One suggestion: what, where, the money at stake (None = unknown) and the figures behind it."""

    kind: str
    subject: str
    text: str
    usd_at_stake: float | None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "usd_at_stake": self.usd_at_stake,
            "text": self.text,
            "figures": self.figures,
        }


def _average(totals: Totals) -> tuple[int, int, int, int]:
    """Per-call input, cache read, cache write and output tokens (rounded)."""
    n = max(totals.requests, 1)
    return (
        round(totals.input_tokens / n),
        round(totals.cache_read_tokens / n),
        round(totals.cache_write_tokens / n),
        round(totals.output_tokens / n),
    )


def _similar(a: Totals, b: Totals) -> bool:
    ia, ib = a.all_input / max(a.requests, 1), b.all_input / max(b.requests, 1)
    oa, ob = a.output_tokens / max(a.requests, 1), b.output_tokens / max(b.requests, 1)
    return all(
        lo > 0 and hi / lo <= SIMILAR_FACTOR for lo, hi in ((min(ia, ib), max(ia, ib)), (min(oa, ob), max(oa, ob)))
    )


def cheaper_model_hints(rows: list[Row], prices: PriceBook, at: float) -> list[Hint]:
    """`cheaper_model` hints from rows grouped by (provider, model, project)."""
    hints = []
    for row in rows:
        provider, model, project = row.labels
        mine = row.totals
        if mine.requests < MIN_CALLS or mine.cost_nanousd <= 0 or mine.unpriced_requests:
            continue
        avg = _average(mine)
        best: tuple[int, Row] | None = None
        for other in rows:
            o_provider, o_model, o_project = other.labels
            if o_provider != provider or o_model == model or o_project == project:
                continue
            if other.totals.requests < MIN_CALLS or not _similar(mine, other.totals):
                continue
            unit = prices.cost_nanousd(o_provider, o_model, at, *avg[:3], avg[3])
            if unit is None:
                continue
            at_sibling = unit * mine.requests
            if at_sibling < mine.cost_nanousd * 0.8 and (best is None or at_sibling < best[0]):
                best = (at_sibling, other)
        if best is None:
            continue
        at_sibling, other = best
        saving = mine.cost_nanousd - at_sibling
        o_avg = _average(other.totals)
        sibling, sibling_project = other.labels[1], other.labels[2] or "(none)"
        mine_in, theirs_in = avg[0] + avg[1] + avg[2], o_avg[0] + o_avg[1] + o_avg[2]
        hints.append(
            Hint(
                "cheaper_model",
                f"{project or '(no project)'} / {model}",
                f"project {project or '(none)'} sends {mine.requests:,} calls to {model} (avg {mine_in:,} in / "
                f"{avg[3]:,} out tokens); project {sibling_project} sends similar calls to {sibling} (avg "
                f"{theirs_in:,} in / {o_avg[3]:,} out). At {sibling}'s price they would cost "
                f"${nanos_to_usd(at_sibling):,.2f} instead of ${nanos_to_usd(mine.cost_nanousd):,.2f}.",
                nanos_to_usd(saving),
                {
                    "provider": provider,
                    "model": model,
                    "project": project,
                    "calls": mine.requests,
                    "avg_input_tokens": mine_in,
                    "avg_output_tokens": avg[3],
                    "cost_usd": nanos_to_usd(mine.cost_nanousd),
                    "sibling_model": sibling,
                    "sibling_used_by_project": other.labels[2],
                    "sibling_calls": other.totals.requests,
                    "sibling_avg_input_tokens": theirs_in,
                    "sibling_avg_output_tokens": o_avg[3],
                    "cost_at_sibling_price_usd": nanos_to_usd(at_sibling),
                },
            )
        )
    return hints


def caching_hints(per_model: list[Row], prices: PriceBook, at: float) -> list[Hint]:
    """`prompt_caching` hints from rows grouped by (provider, model)."""
    hints = []
    for row in per_model:
        provider, model = row.labels
        t = row.totals
        if t.requests < MIN_CALLS or t.unpriced_requests or not t.all_input:
            continue
        avg_input = t.input_tokens / t.requests
        if avg_input < LONG_INPUT_TOKENS or t.cache_read_tokens / t.all_input >= 0.01:
            continue
        avg = _average(t)
        now_cost = prices.cost_nanousd(provider, model, at, avg[0], avg[1], avg[2], avg[3])
        half = avg[0] // 2
        cached_cost = prices.cost_nanousd(provider, model, at, avg[0] - half, avg[1] + half, avg[2], avg[3])
        if now_cost is None or cached_cost is None or cached_cost >= now_cost:
            continue  # no cheaper cache-read rate: caching would not pay
        saving = (now_cost - cached_cost) * t.requests
        hints.append(
            Hint(
                "prompt_caching",
                model,
                f"{model} gets {t.requests:,} calls averaging {round(avg_input):,} uncached input tokens, with "
                f"{t.cache_hit_ratio or 0:.1%} of input read from cache. Its price reads cached input for less: "
                "if half of that input were a cached prefix, these calls would cost "
                f"${nanos_to_usd(saving):,.2f} less.",
                nanos_to_usd(saving),
                {
                    "provider": provider,
                    "model": model,
                    "calls": t.requests,
                    "avg_uncached_input_tokens": round(avg_input),
                    "cache_read_tokens": t.cache_read_tokens,
                    "cache_hit_ratio": t.cache_hit_ratio,
                    "cost_usd": nanos_to_usd(t.cost_nanousd),
                    "assumed_cached_share": 0.5,
                },
            )
        )
    return hints


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reprice_command(store: Store, provider: str, model: str, since: float | None, until: float | None) -> str:
    """The `llmcost reprice` command that prices a model's unpriced calls of the range again, ready to paste."""
    # `llmcost reprice` requires --since: the first bucket with such calls, so the command covers all
    # of them in the range (and, with no range, all of them) and no more.
    first = first_unpriced_bucket(store, provider, model, since, until)
    start = first if first is not None else since or 0
    return shlex.join(["llmcost", "reprice", "--since", _iso(start), "--model", model])


def repriceable_from(events_cutoff: float | None) -> float | None:
    """The first 5-minute bucket whose calls all still have their raw events (None: none were pruned).

    `events_cutoff` is `RetentionConfig.events_cutoff`, the time `llmcost reprice` warns about: a
    `--since` from the next whole bucket on never reaches past it, while the bucket it falls in holds
    calls already pruned.
    """
    if events_cutoff is None:
        return None
    return float(math.ceil(events_cutoff / BUCKET_SECONDS) * BUCKET_SECONDS)


def unpriced_hints(
    per_model: list[Row],
    store: Store,
    since: float | None = None,
    until: float | None = None,
    events_cutoff: float | None = None,
) -> list[Hint]:
    """`unpriced` hints: models whose calls were stored at cost 0, with the reprice command to run.

    `events_cutoff`: raw events before it are past the retention (pruned); the rollups still count
    those calls, but `llmcost reprice` can no longer price them, so the command covers only the calls
    from `repriceable_from(events_cutoff)` on and the hint says how many cannot be repriced.
    """
    kept_from = repriceable_from(events_cutoff)
    hints = []
    for row in per_model:
        provider, model = row.labels
        t = row.totals
        if not t.unpriced_requests:
            continue
        lost = 0
        start = since
        if kept_from is not None and (since is None or since < kept_from):
            lost = unpriced_calls(store, provider, model, since, kept_from if until is None else min(until, kept_from))
            start = kept_from
        verb = "has no price and counts" if t.unpriced_requests == 1 else "have no price and count"
        text = f"{_calls(t.unpriced_requests)} to {provider}/{model} ({t.tokens:,} tokens) {verb} as $0: "
        figures: dict[str, Any] = {
            "provider": provider,
            "model": model,
            "unpriced_calls": t.unpriced_requests,
            "tokens": t.tokens,
        }
        if lost < t.unpriced_requests:
            command = reprice_command(store, provider, model, start, until)
            text += f"add it to the price overrides file, then run `{command}` with the config that names "
            text += "that file (--config)"
        else:
            text += "add it to the price overrides file so that new calls are priced"
        if kept_from is not None and lost:
            # As `llmcost reprice` says of a --since before the cutoff: pruned events stay as recorded.
            text += (
                f"; {'it is' if lost == 1 else f'{lost:,} of them are'} from before {_iso(kept_from)}, past "
                "retention.events_days: their raw events were pruned, so they can no longer be repriced and "
                "stay at $0"
            )
            figures.update(repriceable_calls=t.unpriced_requests - lost, repriceable_since=kept_from)
        hints.append(Hint("unpriced", model, text + ".", None, figures))
    return hints


def _calls(count: int) -> str:
    """The count of calls in words: 1 call, 2,000 calls."""
    return f"{count:,} call" if count == 1 else f"{count:,} calls"


def growth_hints(store: Store, at: float, *, top: int = 3) -> list[Hint]:
    """`growth` hints: projects whose spend rose most in the 7 days before `at` over the 7 days before that."""
    from exporter.report.query import total_cost_between

    this_week = total_cost_between(store, ["project"], at - WEEK, at)
    last_week = total_cost_between(store, ["project"], at - 2 * WEEK, at - WEEK)
    rising = []
    for (project,), now_cost in this_week.items():
        before = last_week.get((project,), 0)
        if now_cost > before:
            rising.append((now_cost - before, project, before, now_cost))
    rising.sort(key=lambda item: (-item[0], item[1]))
    hints = []
    for increase, project, before, now_cost in rising[:top]:
        growth = f"+{increase / before:.0%}" if before else "new this week"
        hints.append(
            Hint(
                "growth",
                project or "(no project)",
                f"project {project or '(none)'} spent ${nanos_to_usd(now_cost):,.2f} in the last 7 days against "
                f"${nanos_to_usd(before):,.2f} the 7 days before ({growth}).",
                nanos_to_usd(increase),
                {
                    "project": project,
                    "last_7d_usd": nanos_to_usd(now_cost),
                    "previous_7d_usd": nanos_to_usd(before),
                    "growth_ratio": (increase / before) if before else None,
                },
            )
        )
    return hints


def all_hints(
    store: Store,
    per_model_project: list[Row],
    per_model: list[Row],
    prices: PriceBook,
    at: float,
    since: float | None = None,
    until: float | None = None,
    events_cutoff: float | None = None,
) -> list[Hint]:
    """Every hint, largest money at stake first (unknown amounts after); `since`/`until`: the report's range.

    `events_cutoff`: raw events before it were pruned (`RetentionConfig.events_cutoff`), for `unpriced_hints`.
    """
    hints = [
        *cheaper_model_hints(per_model_project, prices, at),
        *caching_hints(per_model, prices, at),
        *growth_hints(store, at),
        *unpriced_hints(per_model, store, since, until, events_cutoff),
    ]
    hints.sort(key=lambda h: (h.usd_at_stake is None, -(h.usd_at_stake or 0.0), h.kind, h.subject))
    return hints
