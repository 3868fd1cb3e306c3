"""Where `llmcost demo` puts its replayed hour of history (`exporter.demo.history_window`).

Found running the demo (and its browser test) at 00:05 UTC: the hour of history fell mostly on
yesterday, the daily budget started today near zero and the hourly one had 5 minutes of calls, so the
demo showed no alert at all until the live replay caught up.
"""

from __future__ import annotations

from exporter.demo import history_window, load_trace, make_events, trace_span

MIDNIGHT = 1_796_515_200.0  # a UTC midnight


def _timestamps(now: float) -> list[float]:
    trace = load_trace()
    start, scale = history_window(now, trace_span(trace))
    return [e["timestamp"] for e in make_events(trace, start=start, loop=0, scale=scale)]


def test_just_after_midnight_the_whole_history_lands_today() -> None:
    now = MIDNIGHT + 5 * 60
    stamps = _timestamps(now)
    assert len(stamps) == len(load_trace())
    assert min(stamps) >= MIDNIGHT and max(stamps) <= now  # all of it in today's (and this hour's) budgets


def test_later_in_the_day_the_history_is_the_last_hour_as_recorded() -> None:
    now = MIDNIGHT + 12 * 3600
    trace = load_trace()
    stamps = _timestamps(now)
    assert min(stamps) == now - trace_span(trace) and max(stamps) == now
    assert history_window(now, trace_span(trace))[1] == 1.0
