"""The learned reference's replay (bench/learned_reference.py): the figures it learns from are the detector's.

The reference itself needs scikit-learn (the `experiments` extra) and runs for minutes; what it stands on is
tested here without it: every pass's guard figures, read back through llmcost's rule and hysteresis, give
exactly the detector's own decisions, so the model and llmcost are scored on the same footing.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from alerting.spikes.detection import DetectionConfig, detect_spikes, guard_figures
from tests.support.paths import load_bench_script

TENANTS = [f"chunk-{i}-trace" for i in (1, 7, 19, 35, 38)]  # the tenants with the most false alarms


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return load_bench_script("learned_reference")


@pytest.mark.heavy  # replays or builds a large dataset: `make test` only
def test_the_rule_read_back_from_the_figures_is_the_detector_on_every_pass(ref: ModuleType) -> None:
    cfg = DetectionConfig()
    replay = ref.replay(21, cfg, names=TENANTS)
    firing, started = ref.with_hysteresis(ref.rule_fires(replay.figures, cfg), replay.keep)
    assert replay.fired.any() and replay.fired.size > 30_000
    np.testing.assert_array_equal(firing, replay.fired)
    # and the scores computed from them are the detector's: some spikes caught, some normal moments wronged
    ours = ref.detector([replay])[5.0]
    assert 0.8 < ours.recall <= 1.0 and ours.false_alarms > 0
    assert ref.score([replay], [firing], [started], 5.0) == ours


def test_guard_figures_are_what_detect_spikes_compares(ref: ModuleType) -> None:
    cfg = DetectionConfig()
    per_day = 288
    rng = np.random.default_rng(3)
    steady = rng.uniform(0.9, 1.1, size=(1, 8 * per_day + 40))
    spiked = steady.copy()
    spiked[0, -6:] *= 8  # the last half hour at 8x
    values = np.concatenate([steady, spiked])
    figures = guard_figures(values, cfg)
    result = detect_spikes(values, cfg)
    assert set(figures) == {5, 15, 30}
    half_hour = figures[30]
    assert half_hour.established.all()
    assert half_hour.window[1] == pytest.approx(spiked[0, -6:].sum())
    assert half_hour.baseline[0] == pytest.approx(steady[0, -6:].sum(), rel=0.15)
    assert half_hour.window[1] / half_hour.baseline[1] >= cfg.multiplier
    assert half_hour.usual_peak[1] > half_hour.baseline[1] > 0
    assert half_hour.recent_level[1] == pytest.approx(6 * steady[0, -42:-6].mean(), rel=0.05)
    assert list(result.is_spike) == [False, True]
    assert list(ref.rule_fires(ref.pass_figures(values, 1.0, cfg)[0][:, None], cfg)[:, 0]) == [False, True]


def test_an_alert_raised_before_the_moment_and_held_is_not_a_new_one(ref: ModuleType) -> None:
    warm = ref.WARMUP_MINUTES
    raw = np.zeros((3, warm + 60), dtype=bool)
    keep = np.zeros_like(raw)
    raw[0, warm - 5] = True  # raised in the warm-up ...
    keep[0, warm - 4 : warm + 10] = True  # ... and held into the hour
    raw[1, warm + 3] = True  # raised after the moment
    firing, started = ref.with_hysteresis(raw, keep)
    assert list(started) == [False, True, False]
    assert firing[0, warm : warm + 10].all() and not firing[0, warm + 10 :].any()
    assert list(firing[:, warm:].any(axis=1)) == [True, True, False]


def test_week_figures_tell_a_steady_tenant_from_a_bursty_one(ref: ModuleType) -> None:
    cfg = DetectionConfig()
    per_day = 288
    steady = np.full((1, cfg.buckets_needed), 2.0)
    bursty = steady.copy()
    bursty[0, 3 * per_day : 3 * per_day + 6] = 40.0  # one 20x half hour, four days ago
    week = dict(zip(ref.WEEK_FIGURES, ref.week_figures(np.concatenate([steady, bursty]), cfg).T, strict=True))
    assert list(week["empty_share"]) == [0.0, 0.0]
    assert week["variation"][0] == pytest.approx(0.0, abs=1e-6) and week["variation"][1] > 0.5
    assert week["busiest_half_hour"][0] == pytest.approx(12.0) and week["busiest_half_hour"][1] == pytest.approx(240.0)
    assert week["jumps_4x"][0] == 0 and week["jumps_4x"][1] >= 5  # the half hours that take in the burst


@pytest.mark.heavy  # replays or builds a large dataset: `make test` only
def test_a_replay_reads_another_groups_folder(ref: ModuleType, tmp_path: Path) -> None:
    """`--traces` scores the model on another ServeGen group: its replay reads that folder's tenants."""
    names = ["chunk-11-trace", "chunk-35-trace"]
    for name in names:
        (tmp_path / f"{name}.csv").write_bytes((ref.DATA / f"{name}.csv").read_bytes())
    cfg = DetectionConfig()
    elsewhere, bundled = ref.replay(21, cfg, folder=tmp_path), ref.replay(21, cfg, names=names)
    np.testing.assert_array_equal(elsewhere.fired, bundled.fired)
    np.testing.assert_array_equal(elsewhere.figures, bundled.figures)
    assert set(elsewhere.tenant.tolist()) == {0, 1}
