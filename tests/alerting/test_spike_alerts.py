"""Spike detection end to end: events in the store → LLMCostSpike fired/resolved, gauges from any process."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from alerting.scheduler import AlertScheduler, Outcome
from alerting.scheduler_collector import SchedulerCollector
from alerting.spikes import OTHER, SpikeDeliveryError, SpikeService, SpikeSettings, read_spike_state
from alerting.store import open_store
from tests.support.spikes import D0, DAY, NOW, PROJECTS, SETTINGS, SPIKE_START, RecordingSink, call, spike, usual_spend


def test_a_spike_fires_once_and_resolves_when_spend_returns_to_normal_even_across_processes(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 3600)
    spike(store)
    sink = RecordingSink()
    first = SpikeService(store, SETTINGS, sink)

    quiet = first.evaluate(SPIKE_START - 600)
    assert (quiet.fired, quiet.resolved, quiet.firing) == ([], [], 0)
    assert quiet.series == 1 + 3 + 3

    result = first.evaluate(NOW)
    assert sorted(result.fired, key=str) == [
        {"group": "project", "project": "a"},
        {"group": "provider_model", "provider": "openai", "model": "gpt-4o"},
    ]
    assert sorted(sink.fired_labels(), key=str) == [{"project": "a"}, {"provider": "openai", "model": "gpt-4o"}]
    alertname, _, annotations, severity = next(f for f in sink.fired if f[1] == {"project": "a"})
    assert (alertname, severity) == ("LLMCostSpike", "warning")
    assert {"observed", "baseline", "ratio", "summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["observed"].startswith("$")
    assert 'project="a"' in annotations["summary"]
    assert float(annotations["ratio"].rstrip("x")) >= 3

    # Another process takes over the detection job: it continues from the stored firing flags.
    other_store = open_store(db_url)
    second = SpikeService(other_store, SETTINGS, sink)
    for minute in range(1, 6):
        again = second.evaluate(NOW + 60 * minute)
        assert again.fired == [] and again.resolved == [] and again.firing == 2
    assert len(sink.fired) == 2

    done = second.evaluate(NOW + 45 * 60)  # the spike's buckets have left the 30-minute window
    assert sorted(r["group"] for r in done.resolved) == ["project", "provider_model"]
    assert sorted(sorted(labels) for _, labels in sink.resolved) == [["model", "provider"], ["project"]]
    assert second.evaluate(NOW + 46 * 60).resolved == []
    assert len(sink.fired) == 2 and len(sink.resolved) == 2
    states = {(s.group, tuple(s.labels.values())): s for s in read_spike_state(store)}
    assert not any(s.firing for s in states.values())
    other_store.close()
    store.close()


def test_window_baseline_and_ratio_are_exposed_from_any_process(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 600)
    spike(store)
    SpikeService(store, SETTINGS, RecordingSink()).evaluate(NOW)

    reader = open_store(db_url)  # e.g. an ingest-only replica serving /metrics
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(reader))
    sample = registry.get_sample_value
    a = {"group": "project", "provider": "", "model": "", "project": "a", "service": "", "user": ""}
    window = sample("llm_spend_window_usd", a)
    baseline = sample("llm_spend_baseline_usd", a)
    ratio = sample("llm_spend_spike_ratio", a)
    assert window is not None and baseline is not None and ratio is not None
    assert 3.0 < window < 3.8  # six buckets of ~0.05 + 0.5 (the current one half gone: it holds what was spent)
    assert 0.25 < baseline < 0.36  # six buckets of ~0.05
    assert ratio == pytest.approx(window / baseline)
    total = {"group": "global", "provider": "", "model": "", "project": "", "service": "", "user": ""}
    assert sample("llm_spend_window_usd", total) == pytest.approx(
        sum(sample("llm_spend_window_usd", {**a, "project": p}) or 0 for p in PROJECTS)
    )
    pm = {**a, "group": "provider_model", "project": "", "provider": "anthropic", "model": "claude-sonnet-4-5"}
    assert sample("llm_spend_baseline_usd", pm) == pytest.approx(6 * 0.5, rel=0.2)
    reader.close()
    store.close()


def test_a_new_series_without_history_never_alerts(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 600)
    store.write_events([call(f"new-{i}", NOW - 900 + i, "d", "openai", "gpt-4o", 5.0) for i in range(5)])
    sink = RecordingSink()
    SpikeService(store, SpikeSettings(series=(("project",),)), sink).evaluate(NOW)
    assert sink.fired == []
    d = next(s for s in read_spike_state(store) if s.labels == {"project": "d"})
    assert (d.window_usd, d.reason, d.firing) == (pytest.approx(25.0), "short_history", False)
    assert d.ratio is None  # no baseline: the ratio is undefined, and no sample is exported for it
    store.close()


def test_an_alert_the_gateway_refused_is_handed_over_again_next_pass(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 600)
    spike(store)
    sink = RecordingSink()
    service = SpikeService(store, SpikeSettings(series=(("project",),)), sink)
    sink.refuse = 1
    with pytest.raises(SpikeDeliveryError):
        service.evaluate(NOW)
    assert sink.fired == []
    assert not any(s.firing for s in read_spike_state(store))  # not recorded as firing: retried
    assert service.evaluate(NOW + 60).fired == [{"group": "project", "project": "a"}]
    assert len(sink.fired) == 1
    store.close()


def test_a_label_set_removed_from_the_config_resolves_its_alerts(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 600)
    spike(store)
    sink = RecordingSink()
    SpikeService(store, SETTINGS, sink).evaluate(NOW)
    assert len(sink.fired) == 2
    narrower = SpikeService(store, SpikeSettings(series=(("project",),)), sink)
    result = narrower.evaluate(NOW + 60)
    assert result.resolved == [{"group": "provider_model", "provider": "openai", "model": "gpt-4o"}]
    assert {s.group for s in read_spike_state(store)} == {"project"}
    assert [s.labels for s in read_spike_state(store) if s.firing] == [{"project": "a"}]
    store.close()


def test_series_beyond_the_cap_are_summed_into_other(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0 + 3 * DAY, NOW + 600)
    settings = SpikeSettings(series=((), ("project",)), max_series_per_group=2)
    SpikeService(store, settings, RecordingSink()).evaluate(NOW)
    states = read_spike_state(store)
    projects = {s.labels["project"]: s.window_usd for s in states if s.group == "project"}
    assert set(projects) == {"a", "b", OTHER}  # b and a spend most; c is folded
    total = next(s.window_usd for s in states if s.group == "global")
    assert sum(projects.values()) == pytest.approx(total)
    store.close()


def test_an_empty_store_reports_the_global_total_at_zero(db_url: str) -> None:
    store = open_store(db_url)
    result = SpikeService(store, None, RecordingSink()).evaluate(NOW)
    assert (result.series, result.fired) == (1, [])
    [state] = read_spike_state(store)
    assert (state.group, state.labels, state.window_usd, state.baseline_usd, state.ratio) == ("global", {}, 0, 0, 0)
    store.close()


def test_detection_runs_as_a_scheduler_job(db_url: str) -> None:
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 600)
    spike(store)
    sink = RecordingSink()
    service = SpikeService(store, SETTINGS, sink)
    scheduler = AlertScheduler(store, {"detection": (SETTINGS.interval_seconds, service.evaluate)})
    assert scheduler.run_once("detection", NOW) is Outcome.SUCCESS
    assert scheduler.run_once("detection", NOW + 1) is Outcome.ALREADY_RAN
    assert len(sink.fired) == 2
    sink.refuse = 5
    store.write_events([call("b-burst", NOW + 61, "b", "anthropic", "claude-sonnet-4-5", 40.0)])
    assert scheduler.run_once("detection", NOW + 90) is Outcome.ERROR  # the gateway refused: counted as an error
    assert store.counters()["scheduler.runs.detection.error"] == 1
    store.close()
