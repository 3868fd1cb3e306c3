"""Golden text: the one-line summary of a watched series for every detector `Reason`.

After an intended change, regenerate with `UPDATE_GOLDEN=1 pytest tests/alerting/test_spike_summaries.py` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from alerting.spikes import SpikeState, summarize
from alerting.spikes.detection import DetectionConfig, Reason, detect_spikes

GOLDEN = Path(__file__).parent / "golden" / "spike_summaries.txt"
CFG = DetectionConfig()
LABELS = {"project": "search"}
# (reason, window, baseline): figures a series in that state could show.
CASES = [
    (Reason.SHORT_HISTORY, 42.0, 0.0),
    (Reason.LOW_SPEND, 0.6, 0.1),
    (Reason.BELOW_MULTIPLIER, 5.0, 2.5),
    (Reason.BELOW_RECENT_LEVEL, 9.0, 2.5),
    (Reason.NEAR_USUAL_PEAK, 9.0, 2.5),
    (Reason.SCORE_DISAGREES, 9.0, 2.5),
    (Reason.HELD, 5.0, 2.5),
    (Reason.SPIKE, 12.5, 2.5),
]


def render() -> str:
    lines = [
        f"{reason.name}: {summarize(LABELS, reason, window=window, baseline=baseline, minutes=30, cfg=CFG)}"
        for reason, window, baseline in CASES
    ]
    total = summarize({}, Reason.SPIKE, window=120.0, baseline=30.0, minutes=15, cfg=CFG)
    return "\n".join([*lines, f"SPIKE (total): {total}"]) + "\n"


def test_every_reason_has_a_plain_summary() -> None:
    assert {reason for reason, _, _ in CASES} == set(Reason)
    text = render()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert "inf" not in text and "no baseline spend" not in text


def test_a_zero_baseline_is_short_history_whatever_the_other_figures() -> None:
    """A series whose baseline windows were all empty never reaches a ratio: SHORT_HISTORY."""
    values = np.zeros((1, CFG.buckets_needed))
    values[0, -12:] = 2.0  # an hour of spend, nothing before: a dozen recent windows saw some, median 0
    result = detect_spikes(values, CFG)
    assert Reason(int(result.reason[0])) is Reason.SHORT_HISTORY
    assert not result.is_spike[0]
    summary = summarize(LABELS, Reason.SHORT_HISTORY, window=12.0, baseline=0.0, minutes=30, cfg=CFG)
    assert summary.startswith("No baseline yet:")


def test_a_stored_state_reads_as_its_summary() -> None:
    state = SpikeState(
        group="project",
        labels=LABELS,
        window_usd=12.5,
        baseline_usd=2.5,
        ratio=5.0,
        score=9.0,
        window_minutes=30,
        reason="spike",
        firing=True,
        firing_since=0.0,
        evaluated_at=0.0,
    )
    assert state.summary() == summarize(LABELS, Reason.SPIKE, window=12.5, baseline=2.5, minutes=30, cfg=CFG)
