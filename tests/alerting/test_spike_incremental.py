"""Spike detection reads the store incrementally: its cached rollups match a fresh read while events keep
arriving, and late backfills, history loaded by another process and a pruned log all reach the next pass."""

from __future__ import annotations

import pytest

from alerting.spikes import SpikeService, SpikeSettings, read_spike_state
from alerting.store import open_store
from tests.support.spikes import D0, DAY, NOW, SETTINGS, RecordingSink, call, spike, usual_spend


def test_the_cached_rollups_match_a_fresh_read_while_events_keep_arriving(db_url: str) -> None:
    """Pass after pass, the incremental read sees what a new process reading everything sees."""
    store = open_store(db_url)
    usual_spend(store, D0, NOW - 3600)
    cached = SpikeService(store, SETTINGS, RecordingSink())
    for k in range(12):
        now = NOW - 3600 + 300 * k + 40
        usual_spend(store, now - 300, now, seed=k)  # the minutes since the last pass
        if k == 6:
            spike(store, now - 900, now)
        a = cached.evaluate(now)
        state_a = {(s.group, tuple(s.labels.items())): s for s in read_spike_state(store)}
        b = SpikeService(store, SETTINGS, RecordingSink()).evaluate(now)  # cold: reads the whole range
        state_b = {(s.group, tuple(s.labels.items())): s for s in read_spike_state(store)}
        assert (a.series, a.firing) == (b.series, b.firing)
        for key, s in state_b.items():
            assert state_a[key].window_usd == pytest.approx(s.window_usd, abs=1e-9), (k, key)
            assert state_a[key].baseline_usd == pytest.approx(s.baseline_usd, abs=1e-9), (k, key)
    store.close()


def test_a_backfill_older_than_the_reload_window_reaches_the_next_pass(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0 + 3 * DAY, NOW + 600)
    service = SpikeService(
        store, SpikeSettings(series=((),)), RecordingSink(), reload_seconds=600, full_reload_seconds=3600
    )
    service.evaluate(NOW)
    before = read_spike_state(store)[0].window_usd
    # Calls from 25 minutes ago, loaded late by another process (e.g. `llmcost ingest` of a file):
    # inside the 30-minute window, older than the last pass's newest bucket and the reload window.
    other = open_store(db_url)
    other.write_events([call(f"late-{i}", NOW - 1500 + i, "b", "x", "y", 20.0) for i in range(3)])
    service.evaluate(NOW + 60)
    after = read_spike_state(store)[0].window_usd
    assert after == pytest.approx(before + 60, abs=1.0)
    SpikeService(store, SpikeSettings(series=((),)), RecordingSink()).evaluate(NOW + 60)
    assert read_spike_state(store)[0].window_usd == pytest.approx(after)
    other.close()
    store.close()


def test_history_loaded_by_another_process_after_the_first_pass_raises_no_spike(db_url: str) -> None:
    """The reported backfill: a server starts on live traffic, two weeks of history arrive meanwhile."""
    store = open_store(db_url)
    usual_spend(store, NOW - 20 * 60, NOW + 600)  # live traffic of the last 20 minutes only
    sink = RecordingSink()
    service = SpikeService(store, SETTINGS, sink)
    first = service.evaluate(NOW - 60)
    assert first.fired == []  # no baseline yet: short history, not an infinite ratio
    assert {s.reason for s in read_spike_state(store) if s.group == "project"} == {"short_history"}

    loader = open_store(db_url)  # `llmcost ingest` in another process
    usual_spend(loader, D0, NOW - 20 * 60, seed=3)
    second = service.evaluate(NOW)
    assert second.fired == [] and sink.fired == []
    cached = {(s.group, tuple(s.labels.items())): s.baseline_usd for s in read_spike_state(store)}
    SpikeService(store, SETTINGS, RecordingSink()).evaluate(NOW)  # cold: reads everything
    cold = {(s.group, tuple(s.labels.items())): s.baseline_usd for s in read_spike_state(store)}
    assert cached == pytest.approx(cold)
    assert all(b > 0 for b in cold.values())
    loader.close()
    store.close()


def test_no_new_spike_starts_while_history_is_being_written(db_url: str) -> None:
    """A load running oldest first leaves a gap before now; the first pass after it stops fires."""
    store = open_store(db_url)
    usual_spend(store, NOW - 600, NOW + 600)  # the server's first minutes of live traffic
    spike(store, NOW - 600, NOW)
    sink = RecordingSink()
    service = SpikeService(store, SpikeSettings(series=(("project",),)), sink)
    service.evaluate(NOW - 120)
    loader = open_store(db_url)
    usual_spend(loader, D0, NOW - 3 * DAY, seed=5)  # the oldest days first: the spike looks real already
    service.evaluate(NOW - 60)
    assert sink.fired == []  # deferred: history is still arriving
    usual_spend(loader, NOW - 3 * DAY, NOW - 600, seed=6)  # the rest
    assert service.evaluate(NOW - 30).fired == []  # this pass found writes too
    assert [labels for labels in service.evaluate(NOW).fired] == [{"group": "project", "project": "a"}]
    loader.close()
    store.close()


def test_a_reader_behind_the_pruned_log_reads_everything_again(db_url: str) -> None:
    from sqlalchemy import delete

    from exporter.store.schema import rollup_backfill

    store = open_store(db_url)
    usual_spend(store, D0 + 3 * DAY, NOW + 600)
    service = SpikeService(store, SpikeSettings(series=((),)), RecordingSink())
    service.evaluate(NOW)
    before = read_spike_state(store)[0].window_usd
    store.write_events([call("late", NOW - 1500, "b", "x", "y", 20.0)])
    with store.transaction() as conn:  # as the writer's pruning does to a log far ahead of this reader
        conn.execute(delete(rollup_backfill))
    service.evaluate(NOW + 60)
    assert read_spike_state(store)[0].window_usd == pytest.approx(before + 20, abs=1.0)
    store.close()
