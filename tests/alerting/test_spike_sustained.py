"""A sustained spike stays one firing alert until spend is back to normal.

Found replaying real traffic (ServeGen tenant at 5x for six hours): the alert fired, then resolved
about 2h15m into the spike while spend was still 5x, and never fired again. The hold (hysteresis)
compared the window with the current baseline, and the baseline scales the previous days by today's
level over the last `recent_minutes`, which after three hours is the spike itself (up to
`max_level_change`, 4x): 5x against a 4x baseline is under `resolve_multiplier`. On-call read
"resolved" while the spend went on. A firing series is now compared at today's level from before its
alert started (`firing_buckets` in `alerting/spikes/detection.py`).

A series too young for a daily baseline (fewer than `min_baseline_days` days with spend at this hour)
is compared with the median of its recent windows instead, and those too became the spike: a project
two days old, 5x for five hours, resolved two hours in. Its baseline is now read from the recent
windows before its alert.
"""

from __future__ import annotations

from alerting.spikes import SpikeService, SpikeSettings
from alerting.store import open_store
from tests.support.spikes import D0, DAY, NOW, RecordingSink, spike, usual_spend

START = NOW - 1800
HOURS = 5


def test_a_five_fold_spike_lasting_hours_fires_once_and_resolves_only_after_it_ends(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    usual_spend(store, D0, NOW + 8 * 3600)
    spike(store, START, START + HOURS * 3600, usd=0.2)  # project a: $0.05 usual + $0.20 = 5x
    service = SpikeService(store, SpikeSettings(series=(("project",),)), RecordingSink())
    events = []
    for minute in range(0, (HOURS + 2) * 60, 5):
        outcome = service.evaluate(START + minute * 60)
        events += [(minute, "fired") for _ in outcome.fired] + [(minute, "resolved") for _ in outcome.resolved]
    store.close()
    (fired, first), (resolved, second) = events  # one alert: fired once, resolved once
    assert (first, second) == ("fired", "resolved")
    assert fired <= 30
    assert HOURS * 60 <= resolved <= HOURS * 60 + 45, f"resolved {resolved} min into a {HOURS * 60}-min spike"


def test_a_spike_on_a_series_too_young_for_a_daily_baseline_resolves_only_after_it_ends(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    usual_spend(store, START - 2 * DAY + 7200, NOW + 8 * 3600)  # two days: no daily baseline yet
    spike(store, START, START + HOURS * 3600, usd=0.2)
    service = SpikeService(store, SpikeSettings(series=(("project",),)), RecordingSink())
    events = []
    for minute in range(0, (HOURS + 2) * 60, 5):
        outcome = service.evaluate(START + minute * 60)
        events += [(minute, "fired") for _ in outcome.fired] + [(minute, "resolved") for _ in outcome.resolved]
    store.close()
    (fired, first), (resolved, second) = events
    assert (first, second) == ("fired", "resolved")
    assert fired <= 30
    assert HOURS * 60 <= resolved <= HOURS * 60 + 45, f"resolved {resolved} min into a {HOURS * 60}-min spike"
