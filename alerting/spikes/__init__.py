"""Spike detection as a service: store rollups in, `LLMCostSpike` alerts and persisted gauges out.

`SpikeService.evaluate(now)` is what the scheduler's `detection` job runs. For every watched label set
in `detection.series` it builds the dense (series × buckets) array of 5-minute spend the pure detector
needs (`bucket_layout`: ~7 days), zero-filled, from a `SpendCache` that re-reads only the newest buckets
from one pass to the next and holds only the non-zero buckets (dense arrays are made for the series
passed to the detector only); calls `alerting.spikes.detection.detect_spikes` once for all series of the set; then:

- fires `LLMCostSpike` for series that start spiking and resolves the ones that returned to normal,
  through an `AlertSink` (the alert gateway in production);
- writes every series' window, baseline, ratio and firing flag to `spike_state`, so the `llm_spend_*`
  gauges read the same figures from any process, and the next pass (in whichever process leads then)
  continues the hysteresis from the stored firing flags.

Alerts are handed over before the state is written: a crash in between makes the next pass hand the
same transition over again, which the gateway's fingerprint dedup absorbs. Nothing is lost, nothing
notified twice.

Per label set at most `max_series_per_group` series are watched (the highest spend over the loaded range,
plus any that are firing); the rest are summed into one `__other__` series so the totals stay exact.
The fold starts before any array is built: the cache itself keeps at most `CACHE_KEYS_PER_SERIES` x
`max_series_per_group` label combinations (the highest spend at each full read) and sums the others
into one `__other__` row, so 100k distinct project names cost one row, not 100k rows of 7 days.

The package, one concern a module: `settings` (the `detection:` section; `llmcost/config.py` lists its
validator), `cache` (`SpendCache`, the rollups read between passes), `service` (`SpikeService`), `state` (the
`spike_state` table and `SpikeState`), `messages` (alert annotations and plain-words summaries).
"""

from alerting.sink import AlertSink
from alerting.spikes.cache import CACHE_KEYS_PER_SERIES, SpendCache, backfill_since
from alerting.spikes.messages import ALERTNAME, RUNBOOK_URL, SEVERITY, alert_annotations, summarize
from alerting.spikes.service import MAX_SETTLING_SECONDS, SpikeDeliveryError, SpikePass, SpikeService
from alerting.spikes.settings import (
    WATCHABLE_LABELS,
    SpikeSettings,
    detection_settings,
    group_name,
    parse_detection,
)
from alerting.spikes.state import SpikeState, read_spike_state, series_key, spike_state, state_row
from exporter.collector import OTHER

__all__ = [
    "ALERTNAME",
    "CACHE_KEYS_PER_SERIES",
    "MAX_SETTLING_SECONDS",
    "OTHER",
    "RUNBOOK_URL",
    "SEVERITY",
    "WATCHABLE_LABELS",
    "AlertSink",
    "SpendCache",
    "SpikeDeliveryError",
    "SpikePass",
    "SpikeService",
    "SpikeSettings",
    "SpikeState",
    "alert_annotations",
    "backfill_since",
    "detection_settings",
    "group_name",
    "parse_detection",
    "read_spike_state",
    "series_key",
    "spike_state",
    "state_row",
    "summarize",
]
