"""Label ranks as a running server keeps them: made at start-up, grown labels seen in the scrape's own query.

The flood figures (100,000 values of every label) are in test_hardening_labels.py; these are the same
paths on a few values, fast.
"""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from exporter.collector import AdjustmentCollector, UsageCollector
from exporter.events import UsageEvent
from exporter.http.app import build_app
from exporter.label_ranks import LabelRanks
from exporter.services import Services
from tests.support.helpers import make_config, samples, total

NOW = time.time()


def spend(rid: str, cost: int, *, model: str = "gpt-4o", user: str = "u") -> UsageEvent:
    return UsageEvent(
        rid, NOW - 600, "openai", model, input_tokens=1, cost_nanousd=cost, user=user, cost_source="supplied"
    )


def values_of(text: str, label: str) -> set[str]:
    return {dict(labels)[label] for (name, labels), _ in samples(text).items() if name == "llm_cost_usd_total"}


def usage_collector(services: Services) -> UsageCollector:
    return next(c for c in services.registry._collector_to_names if isinstance(c, UsageCollector))  # type: ignore[attr-defined]


def test_ranks_are_made_at_start_up_and_new_values_show_in_the_scrape_that_first_sees_them(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url, metrics={"extra_labels": ["user"], "max_series_per_label": 4}))
    services.store.write_events([spend("a", 1_000_000_000)])
    usage = usage_collector(services)
    with TestClient(build_app(services)) as client:
        assert set(usage.ranks.ranked_at) == {"provider", "model", "project", "service", "user"}  # before a scrape
        assert values_of(client.get("/metrics").text, "model") == {"gpt-4o"}

        # A new model (the label stays under the cap): its own series in the very next scrape.
        services.store.write_events([spend("b", 2_000_000_000, model="gpt-4o-mini")])
        assert values_of(client.get("/metrics").text, "model") == {"gpt-4o", "gpt-4o-mini"}

        # Past the cap: the new values count under `__other__` at once (totals exact). The kept values
        # of a folded label are ranked by the spend ingested before the start of the epoch before last
        # (the same for every process on the store, exporter.label_ranks): none of these had any yet.
        services.store.write_events([spend(f"u{i}", (i + 1) * 1_000_000_000, user=f"user-{i}") for i in range(6)])
        for text in (client.get("/metrics").text, client.get("/metrics").text):
            assert values_of(text, "user") == {"__other__"}
            assert total(text, "llm_cost_usd_total") == 1 + 2 + sum(range(1, 7))
        # Three epochs on, the three highest-cost values show on their own.
        later = time.time() + 3 * usage.ranks.refresh
        usage.ranks.clock = lambda: later
        for text in (client.get("/metrics").text, client.get("/metrics").text):
            assert values_of(text, "user") == {"user-5", "user-4", "user-3", "__other__"}
            assert total(text, "llm_cost_usd_total") == 1 + 2 + sum(range(1, 7))
        assert total(text, "llm_cost_usd_total", user="__other__") == 1 + 2 + 1 + 2 + 3
    services.close()


def test_adjustments_from_the_usage_scan_equal_a_read_of_their_own(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url, metrics={"extra_labels": ["user"], "max_series_per_label": 2}))
    services.store.write_events([spend(f"e{i}", 1_000_000, model=f"m{i % 3}", user=f"user-{i}") for i in range(6)])
    with services.store.engine.begin() as conn:  # as `llmcost reprice` leaves them
        conn.exec_driver_sql(
            "UPDATE usage_series SET cost_adjust_up_nanousd = id * 1000, cost_adjust_down_nanousd = id"
        )
    with TestClient(build_app(services)) as client:
        shared = {
            k: v for k, v in samples(client.get("/metrics").text).items() if k[0].startswith("llm_cost_adjustment")
        }
    alone = AdjustmentCollector(services.store, usage_collector(services))  # no usage scan before it
    read = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in alone.collect() for s in family.samples}
    assert shared == read
    assert sum(v for (name, labels), v in read.items() if dict(labels)["direction"] == "up") > 0
    services.close()


def test_two_processes_ranking_in_one_epoch_keep_the_same_values_whenever_they_rank(sqlite_url: str) -> None:
    """The kept values of an epoch come from the spend ingested before the epoch before last: spend
    ingested since (a value climbing) changes nothing until every process switches, at one moment."""
    services = Services.build(make_config(sqlite_url, metrics={"max_series_per_label": 3}))
    store = services.store
    now = [NOW - 1000]  # when the store ingests
    store.clock = lambda: now[0]
    costs = {"a": 5, "b": 4, "c": 3, "d": 2}
    store.write_events([spend(f"s-{name}", usd * 1_000_000_000, model=f"m-{name}") for name, usd in costs.items()])
    clock = [NOW]
    first = LabelRanks(store, 3, lambda: clock[0])
    first.rank_unranked(["model"])
    now[0] = NOW
    store.write_events([spend("climb", 9_000_000_000, model="m-d")])  # d climbs above a, in this epoch
    clock[0] = NOW + 1
    second = LabelRanks(store, 3, lambda: clock[0])  # a process that ranks later in the same epoch
    second.rank_unranked(["model"])
    assert first.folding.keep == second.folding.keep == {"model": ["m-a", "m-b"]}
    clock[0] = NOW + 3 * 60  # the epoch after next: both switch, to the same values
    for ranks in (first, second):
        assert ranks.switch_epoch(["model"])
    assert first.folding.keep == second.folding.keep == {"model": ["m-d", "m-a"]}
    services.close()


def test_unpriced_calls_are_counted_per_model_as_stored_under_a_cap_of_their_own(db_url: str) -> None:
    """Past the cap the model label folds, and an unpriced model (cost 0) folds first: its unpriced
    counter keeps the model's name (tests/e2e/test_unpriced_past_label_cap.py), up to the cap of pairs."""
    services = Services.build(make_config(db_url, metrics={"max_series_per_label": 3}))
    try:
        priced = [spend(f"p{i}", 1_000_000 * (i + 1), model=f"priced-{i}") for i in range(4)]
        unpriced = [
            UsageEvent(f"u{n}-{i}", NOW - 600, "acme", f"acme-{n}", input_tokens=1, cost_source="unpriced")
            for n in range(1, 5)
            for i in range(n)
        ]
        services.store.write_events(priced + unpriced)
        assert services.store.unpriced_models(3) == {
            ("acme", "acme-4"): 4,
            ("acme", "acme-3"): 3,
            ("__other__", "__other__"): 3,
        }
        assert services.store.unpriced_models(4) == {("acme", f"acme-{n}"): n for n in range(1, 5)}
        with TestClient(build_app(services)) as client:
            text = client.get("/metrics").text
        assert "priced-0" not in values_of(text, "model")  # the model label is past its cap
        assert total(text, "llm_unpriced_requests_total", model="acme-4") == 4
        assert total(text, "llm_unpriced_requests_total") == 10
    finally:
        services.close()


def test_every_grown_label_under_the_cap_is_listed_again_however_long_ranking_takes(db_url: str) -> None:
    """A fresh store's first burst grows every label at once. Ranking one as folded reads its recent
    events (all of them, on a fresh store), so only what fits a scrape's budget was ranked and the other
    labels' values showed as `__other__` although under the cap. Listing a label under the cap reads no
    event and has no budget: with none at all (`seconds=0`), every such label is listed; of those past the
    cap, one is ranked as folded (at least one, as before) and the rest wait for the next scrapes."""
    services = Services.build(make_config(db_url, metrics={"extra_labels": ["user"], "max_series_per_label": 3}))
    try:
        store = services.store
        ranks = LabelRanks(store, 3)
        names = ["provider", "model", "project", "service", "user"]
        ranks.rank_unranked(names)  # the empty store a fresh server ranks at start-up
        assert ranks.folding.known == {name: [] for name in names}
        store.write_events(
            [spend(f"e{i}", 1_000_000, model=f"m{i % 3}", user=f"user-{i}") for i in range(6)]
            + [spend("x", 1_000_000, model="m9", user="late")]
        )
        grown = ["model", "user"]  # model: four values, past the cap of three, as user
        assert ranks.rank_grown(["provider", *grown], seconds=0) == ["provider", "model"]
        assert ranks.folding.known["provider"] == ["openai"]
        assert "model" in ranks.folding.keep and ranks.folding.known["user"] == []  # user: the next scrape's

        other = UsageEvent("z", NOW - 600, "acme", "m0", input_tokens=1, cost_nanousd=1, cost_source="supplied")
        store.write_events([spend("y", 1_000_000, model="m0", user="u"), other])  # a second provider
        assert ranks.rank_grown(["provider"], seconds=0) == ["provider"]
        assert ranks.folding.known["provider"] == ["acme", "openai"]
    finally:
        services.close()
