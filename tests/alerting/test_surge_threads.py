"""The surge replay behind docs/alerting.md's figure (bench/surge_threads.py): one thread per pass.

Real ServeGen tenants all spiking at once start their spikes over a few detection passes; each pass's
spikes are one Slack thread, one mail thread and one PagerDuty incident, whatever label sets watch them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import load_bench_script


@pytest.mark.heavy  # replays a large dataset: `make test` only
def test_a_surge_of_real_tenants_is_one_thread_and_one_incident_per_pass(tmp_path: Path) -> None:
    bench = load_bench_script("surge_threads")
    counts = bench.replay(bench.SERIES["default label sets"], bench.events(), tmp_path)
    passes = counts["passes starting spikes"]
    assert 0 < passes < counts["spike alerts"], counts
    assert counts["Slack posts"] == counts["mail threads"] == counts["PagerDuty incidents"] == passes, counts
