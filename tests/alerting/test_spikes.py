"""Spike detection end to end: events in the store → LLMCostSpike fired/resolved, gauges from any process."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerting.scheduler import AlertScheduler, Outcome
from alerting.scheduler_collector import SchedulerCollector
from alerting.spikes import (
    OTHER,
    SpikeDeliveryError,
    SpikeService,
    SpikeSettings,
    detection_settings,
    parse_detection,
    read_spike_state,
)
from alerting.spikes.detection import DetectionConfig
from alerting.store import open_store
from exporter.config import ConfigError
from exporter.events import UsageEvent
from exporter.store import Store
from llmcost.config import parse_config

DAY, BUCKET = 86400, 300
D0 = 1_795_046_400  # a UTC midnight
NOW = D0 + 4 * DAY + 13 * 3600 + 150  # 13:02:30 on the fifth day, half-way into a bucket
# project → (provider, model, usual spend per 5 minutes in USD)
PROJECTS = {"a": ("openai", "gpt-4o", 0.05), "b": ("anthropic", "claude-sonnet-4-5", 0.50), "c": ("openai", "o3", 0.02)}
SPIKE_START = NOW - 30 * 60  # the last 30 minutes before NOW
SPIKE_USD = 0.5  # extra per 5 minutes for project a: 10x its usual spend


class RecordingSink:
    """Records what the service hands to the gateway; can be told to refuse the next calls."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, dict[str, str], dict[str, str], str]] = []
        self.resolved: list[tuple[str, dict[str, str]]] = []
        self.refuse = 0

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("gateway down")
        self.fired.append((alertname, dict(labels), dict(annotations), severity))

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("gateway down")
        self.resolved.append((alertname, dict(labels)))

    def fired_labels(self) -> list[dict[str, str]]:
        return [labels for _, labels, _, _ in self.fired]


def usual_spend(store: Store, start: float, end: float, seed: int = 7) -> None:
    """One call per project per 5-minute bucket, ±20% around its usual spend."""
    rng = random.Random(seed)
    events = []
    for bucket in range(int(start), int(end), BUCKET):
        for project, (provider, model, usd) in PROJECTS.items():
            events.append(
                call(f"{project}-{bucket}", bucket + 10, project, provider, model, usd * rng.uniform(0.8, 1.2))
            )
    store.write_events(events)


def spike(store: Store, start: float = SPIKE_START, end: float = NOW, usd: float = SPIKE_USD) -> None:
    provider, model, _ = PROJECTS["a"]
    store.write_events(
        [call(f"spike-{b}", b + 20, "a", provider, model, usd) for b in range(int(start), int(end), BUCKET)]
    )


def call(rid: str, ts: float, project: str, provider: str, model: str, usd: float) -> UsageEvent:
    return UsageEvent(
        request_id=rid,
        timestamp=ts,
        provider=provider,
        model=model,
        project=project,
        cost_nanousd=round(usd * 1e9),
        cost_source="supplied",
    )


SETTINGS = SpikeSettings(series=((), ("project",), ("provider", "model")))


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


# ---- configuration ----------------------------------------------------------------------------------


def test_defaults_follow_the_spec() -> None:
    problems: list[str] = []
    settings = parse_detection({}, problems)
    assert problems == []
    assert settings.interval_seconds == 60
    assert settings.series == ((), ("project",), ("provider", "model"))
    cfg = settings.detector
    assert (cfg.window_minutes, cfg.baseline_days, cfg.multiplier, cfg.min_spend_usd) == (30, 7, 3.0, 1.0)
    assert parse_detection(None, problems) == SpikeSettings()


def test_a_full_section_is_parsed() -> None:
    raw: dict[str, Any] = {
        "detection": {
            "interval_seconds": 30,
            "series": [[], ["user"], ["provider", "model"], ["project", "service"]],
            "window_minutes": 60,
            "baseline_days": 14,
            "multiplier": 4,
            "min_spend_usd": 5,
            "min_history_windows": 10,
            "short_windows_minutes": [10],
            "resolve_multiplier": 2,
            "max_series_per_group": 50,
        }
    }
    settings = detection_settings(parse_config(raw))
    assert settings.interval_seconds == 30
    assert settings.series == ((), ("user",), ("provider", "model"), ("project", "service"))
    assert settings.max_series_per_group == 50
    assert settings.detector == DetectionConfig(
        window_minutes=60,
        baseline_days=14,
        multiplier=4.0,
        min_spend_usd=5.0,
        min_history_windows=10,
        short_windows_minutes=(10,),
        resolve_multiplier=2.0,
    )


def test_every_problem_in_the_section_is_listed_with_its_path() -> None:
    raw = {
        "detection": {
            "interval_seconds": 0,
            "series": [[], ["project", "project"], ["status"], "project", ["provider", "model"], ["model", "provider"]],
            "window_minutes": 7,
            "baseline_days": 0,
            "multiplier": "3",
            "min_spend_usd": -1,
            "frequency": 5,
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    problems = caught.value.problems
    for expected in (
        "detection.interval_seconds:",
        "detection.series[1]: a label is repeated",
        "detection.series[2]: unknown label(s) ['status']",
        "detection.series[3]: must be a list",
        "detection.series[5]: ['model', 'provider'] is watched twice",
        "detection.window_minutes: must be a multiple of 5 minutes",
        "detection.baseline_days: must be an integer >= 1",
        "detection.multiplier: must be a number",
        "detection.min_spend_usd: must be a number >= 0,",
        "detection.frequency: unknown key",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == 10, problems


def test_inconsistent_detector_settings_are_reported() -> None:
    problems: list[str] = []
    parse_detection({"multiplier": 2, "resolve_multiplier": 2.5}, problems)
    assert len(problems) == 1 and problems[0].startswith("detection: resolve_multiplier"), problems
    problems = []
    parse_detection({"series": []}, problems)
    assert problems == ["detection.series: must be a non-empty list of label lists, e.g. [[], [project]]"]


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
