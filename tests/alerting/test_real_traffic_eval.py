"""The real-traffic spike evaluation (bench/eval_real_traffic.py) on a few ServeGen tenants.

The full run over the 43 tenants is `make eval`; here a handful of tenants (steady, bursty, business
hours, a weekly pattern) keep it fast while still judging the detector against the two simple rules
on the same moments and the same injected spikes.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from alerting.spikes.detection import DetectionConfig
from tests.support.paths import load_bench_script

TENANTS = [f"chunk-{i}-trace" for i in (1, 7, 11, 16, 19, 21, 26, 31, 35, 38)]


def _load() -> ModuleType:
    return load_bench_script("eval_real_traffic")


@pytest.fixture(scope="module")
def evaluation() -> tuple[ModuleType, object]:
    ev_mod = _load()
    tenants = ev_mod.load_tenants(names=TENANTS)
    assert [t.name for t in tenants] == sorted(TENANTS, key=lambda n: int(n.split("-")[1]))
    return ev_mod, ev_mod.evaluate(tenants, DetectionConfig(), factors=(3.0, 5.0))


def test_the_bundled_traces_are_read_as_spend_spread_over_each_window() -> None:
    ev_mod = _load()
    (tenant,) = ev_mod.load_tenants(names=["chunk-11-trace"])
    assert tenant.rate.size == 14 * 144  # 14 days of 10-minute windows
    per_window = tenant.minute_spend.reshape(-1, 10)
    calls = np.where(tenant.rate > 0, np.maximum(np.rint(tenant.rate * 600), 1), 0)
    assert per_window.sum(axis=1) == pytest.approx(calls * ev_mod.PRICE_PER_CALL)
    busy = calls >= 100
    assert (per_window[busy] > 0).sum(axis=1).min() >= 5  # several calls spread over the window, not one lump


@pytest.mark.heavy  # replays or builds a large dataset: `make test` only
def test_the_detector_beats_both_simple_rules_on_real_traffic(evaluation: tuple[ModuleType, object]) -> None:
    _, ev = evaluation
    for factor, by_method in ev.scores.items():  # type: ignore[attr-defined]
        ours = by_method["llmcost"]
        for rule in ("same-time median", "24h average"):
            assert ours.f1 > by_method[rule].f1, (factor, rule, ours, by_method[rule])
            assert ours.false_per_tenant_day < by_method[rule].false_per_tenant_day
        assert ours.eligible > 20


def test_5x_spikes_are_caught_within_minutes(evaluation: tuple[ModuleType, object]) -> None:
    """These are among the burstiest tenants (the full run's figures are in docs/detection.md)."""
    _, ev = evaluation
    ours = ev.scores[5.0]["llmcost"]  # type: ignore[attr-defined]
    assert ours.recall >= 0.9
    assert ours.precision >= 0.75
    assert ours.median_delay <= 10


def test_a_normal_moment_that_is_already_a_spike_is_measured_as_one() -> None:
    """`Cases.natural` sizes a moment's own traffic with the yardstick injected spikes are sized by."""
    ev_mod = _load()
    spend = np.full(14 * 1440, 0.1)
    rate = np.full(14 * 144, 0.1 / ev_mod.PRICE_PER_CALL / 60)
    starts = ev_mod.make_cases([ev_mod.Tenant("steady", spend.copy(), rate)], seed=3, spike_share=0.0).start
    moment = int(starts[starts >= 10 * 1440][0])
    spend[moment + 5 : moment + 50] = 1.0  # a real 10x jump, 45 minutes long, nothing injected
    cases = ev_mod.make_cases([ev_mod.Tenant("steady", spend, rate)], seed=3, spike_share=0.0)
    assert np.array_equal(cases.start, starts)
    assert cases.natural[cases.start == moment][0] == pytest.approx(10.0)
    before = cases.start < moment - 300
    assert cases.natural[before] == pytest.approx(np.ones(before.sum()))


def test_false_alarms_on_natural_spikes_are_a_side_figure(evaluation: tuple[ModuleType, object]) -> None:
    """Setting those moments apart is reported beside the score, never instead of it."""
    _, ev = evaluation
    for by_method in ev.scores.values():  # type: ignore[attr-defined]
        for s in by_method.values():
            assert 0 <= s.false_on_natural <= s.false_alarms
            assert s.precision_apart >= s.precision
            if s.false_on_natural == 0:
                assert s.precision_apart == s.precision


def test_an_injected_spike_is_measured_with_the_same_yardstick_as_a_natural_one() -> None:
    """On a steady tenant a 5x spike of any shape measures 5, as a natural 5x jump would (`Cases.natural`)."""
    ev_mod = _load()
    spend = np.full(14 * 1440, 0.1)
    rate = np.full(14 * 144, 0.1 / ev_mod.PRICE_PER_CALL / 60)
    tenant = ev_mod.Tenant("steady", spend, rate)
    cases = ev_mod.make_cases([tenant], seed=3, spike_share=1.0)
    assert set(cases.shape) == {0, 1, 2}  # step, ramp and burst all drawn
    assert cases.natural == pytest.approx(np.ones(cases.start.size))
    sizes = ev_mod.spiked_size([tenant], cases, 5.0)
    assert sizes == pytest.approx(np.full(cases.start.size, 5.0))


def test_the_size_reference_fires_where_size_alone_reaches_95_percent_recall() -> None:
    """The reference printed beside the score: what judging moments by their size alone would give."""
    ev_mod = _load()
    spiked = np.array([*range(1, 21), 0.0, 30.0], dtype=float)  # 20 eligible spikes sized 1..20, then 2 more
    eligible = np.array([True] * 20 + [False, False])
    normal = np.array([0.5, 1.5, 2.0, 3.0, 0.0])
    ref = ev_mod.size_reference(spiked, eligible, normal)
    assert ref.threshold == 2.0  # the highest that still keeps 19 of the 20 eligible spikes
    assert ref.recall == pytest.approx(0.95)
    assert ref.false_alarms == 2  # the normal moments at 2.0 and 3.0
    assert ref.precision == pytest.approx(20 / 22)  # 19 eligible spikes and the ineligible one at 30


def test_the_size_reference_is_reported_for_every_factor(evaluation: tuple[ModuleType, object]) -> None:
    _, ev = evaluation
    assert set(ev.reference) == set(ev.scores)  # type: ignore[attr-defined]
    for ref in ev.reference.values():  # type: ignore[attr-defined]
        assert ref.recall >= 0.95
        assert 0 < ref.precision < 1


def test_another_servegen_group_is_scored_as_an_independent_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--traces` points the run at another group's folder (docs/detection.md, independent checks)."""
    ev_mod = _load()
    folder = tmp_path / "m-other"
    folder.mkdir()
    for name in ("chunk-11-trace.csv", "chunk-35-trace.csv"):
        (folder / name).write_bytes((ev_mod.DATA / name).read_bytes())
    assert ev_mod.main(["--traces", str(folder), "--seed", "21"]) == 0
    out = capsys.readouterr().out
    assert f"Traffic: ServeGen traces from {folder}" in out
    assert "2 tenants x 14 days" in out
    assert "5x  llmcost" in out


def test_a_folder_without_traces_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev_mod = _load()
    with pytest.raises(SystemExit) as exit_:
        ev_mod.main(["--traces", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"--traces {tmp_path}: no chunk-*-trace.csv files" in capsys.readouterr().err
