"""The store on real SQLite and real PostgreSQL: idempotency, rollups, totals, counters."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from exporter.events import UsageEvent
from exporter.store import Store, StoreUnavailable
from exporter.store.schema import BUCKET_SECONDS

T0 = 1_795_000_200.0  # a bucket boundary


def ev(rid: str, *, ts: float = T0, project: str = "p", cost: int = 1_000, **kw) -> UsageEvent:  # type: ignore[no-untyped-def]
    fields = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}
    fields.update(kw)
    return UsageEvent(request_id=rid, timestamp=ts, project=project, cost_nanousd=cost, cost_source="priced", **fields)


def test_duplicates_count_once_within_and_across_batches(db_url: str) -> None:
    store = Store(db_url)
    first = store.write_events([ev("a"), ev("b"), ev("a")])
    assert first.inserted == [True, True, False]
    assert (first.accepted, first.duplicates) == (2, 1)
    second = store.write_events([ev("b"), ev("c")])
    assert second.inserted == [False, True]
    totals = store.series_totals(["provider"])
    assert [t.get("requests") for t in totals] == [3]
    assert totals[0].get("cost_nanousd") == 3_000
    assert store.counters()["accepted"] == 3
    assert store.counters()["duplicate"] == 2
    assert store.event_count() == 3
    store.close()


def test_every_event_field_is_stored_including_empty_ones(db_url: str) -> None:
    store = Store(db_url)
    store.write_events([ev("bare")])  # latency and metadata absent in the whole batch
    store.write_events(
        [
            ev("full", latency_ms=812.5, metadata={"trace_id": "t-1", "region": "eu"}, reasoning_tokens=3),
            ev("bare2"),
        ]
    )
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            "SELECT request_id, latency_ms, meta_json, reasoning_tokens, cost_source FROM usage_events "
            "ORDER BY request_id"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("bare", None, None, 0, "priced"),
        ("bare2", None, None, 0, "priced"),
        ("full", 812.5, '{"trace_id":"t-1","region":"eu"}', 3, "priced"),
    ]
    store.close()


def test_large_batches_store_every_row_once_with_its_values(db_url: str) -> None:
    """Batches beyond one multi-row INSERT (SQLite writes 250 rows a statement), with old and new ids mixed."""
    store = Store(db_url)

    def event(i: int) -> UsageEvent:
        extra = {"latency_ms": float(i % 3)} if i % 2 else {"metadata": {"i": i}} if i % 5 == 0 else {}
        return ev(f"big-{i:04d}", ts=T0 + i, cost=i, input_tokens=i, **extra)

    first = store.write_events([event(i) for i in range(0, 1_000, 2)])  # 500 rows: two whole statements
    assert first.accepted == 500
    second = store.write_events([event(i) for i in range(0, 1_103)])  # 1,103 rows, 603 of them new
    assert (second.accepted, second.duplicates) == (603, 500)
    assert second.inserted == [i % 2 == 1 or i >= 1_000 for i in range(1_103)]
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            "SELECT request_id, ts, input_tokens, cost_nanousd, latency_ms, meta_json FROM usage_events "
            "ORDER BY request_id"
        ).all()
    expected = []
    for i in range(1_103):
        e = event(i)
        meta = f'{{"i":{i}}}' if e.metadata else None
        expected.append((e.request_id, e.timestamp, i, i, e.latency_ms, meta))
    assert [tuple(r) for r in rows] == expected
    assert store.series_totals(["provider"])[0].get("cost_nanousd") == sum(range(1_103))
    store.close()


def test_rollups_are_bucketed_and_match_totals(db_url: str) -> None:
    store = Store(db_url)
    events = [ev(f"r{i}", ts=T0 + i * 60, project=f"p{i % 2}", cost=i) for i in range(20)]
    events.append(ev("unpriced", ts=T0, cost=0, model="mystery"))
    events[-1].cost_source = "unpriced"
    store.write_events(events)
    rows = store.rollup_buckets(T0, T0 + 3600, group_by=["project"], columns=["requests", "cost_nanousd"])
    by_key = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    assert by_key[("p0", T0)] == (3, 0 + 2 + 4)  # minutes 0, 2 and 4 fall in the first bucket
    assert by_key[("p", T0)] == (1, 0)  # the unpriced call
    assert sum(v[0] for v in by_key.values()) == 21
    assert {b for _, b in by_key} == {T0 + k * BUCKET_SECONDS for k in range(4)}
    total = sum(r.get("cost_nanousd") for r in store.series_totals(["project"]))
    assert total == sum(range(20))
    unpriced = {r.labels: r.get("unpriced_requests") for r in store.series_totals(["model"])}
    assert unpriced == {("gpt-4o",): 0, ("mystery",): 1}
    store.close()


def test_counters_survive_reopen_and_migrate_is_idempotent(db_url: str) -> None:
    store = Store(db_url)
    store.write_events([ev("a"), ev("b")], rejected=3)
    store.close()
    again = Store(db_url)
    again.migrate()
    assert again.counters()["rejected"] == 3
    assert again.series_totals(["model"])[0].get("requests") == 2
    again.close()


def test_concurrent_writers_never_double_count(db_url: str) -> None:
    """Two Store instances (as two processes would) write overlapping ids at the same time."""
    stores = [Store(db_url), Store(db_url)]
    batches = [
        [ev(f"r{i}", cost=1) for i in range(k, 3000, 2)] + [ev(f"r{i}", cost=1) for i in range(500)] for k in (0, 1)
    ]

    def write(store: Store, events: list[UsageEvent]) -> None:
        for start in range(0, len(events), 250):
            store.write_events(events[start : start + 250])

    threads = [threading.Thread(target=write, args=pair) for pair in zip(stores, batches, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = stores[0].series_totals(["provider"])[0]
    assert totals.get("requests") == 3000
    assert totals.get("cost_nanousd") == 3000
    assert stores[1].event_count() == 3000
    for store in stores:
        store.close()


def test_postgresql_pool_drops_connections_the_server_closed_without_failing_a_request() -> None:
    """After a PostgreSQL restart, the first write and the first read succeed on fresh connections."""
    from tests.support.pg import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        store = Store(cluster.create_database())
        store.write_events([ev("before")])
        assert store.event_count() == 1  # pooled connections now exist and are idle
        cluster.stop("fast")
        cluster.restart()
        assert store.write_events([ev("after")]).accepted == 1
        with store.raw_cursor() as (cursor, _):
            cursor.execute("SELECT count(*) FROM usage_events")
            assert cursor.fetchone()[0] == 2
        store.close()
    finally:
        cluster.destroy()


def test_sqlite_writers_in_other_processes_wait_for_the_writer_turn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A second process queues on the turn while the first holds it, and is let in once it is released."""
    import multiprocessing
    import time

    from exporter.store.writer_turn import WriterTurn, sqlite_lock_path

    lock_path = sqlite_lock_path(str(tmp_path / "x.db"))
    assert lock_path is not None and sqlite_lock_path(":memory:") is None
    turn = WriterTurn(lock_path)
    ctx = multiprocessing.get_context("fork")
    held, waited = ctx.Event(), ctx.Queue()

    def other() -> None:
        held.wait(10)
        started = time.monotonic()
        with WriterTurn(lock_path):
            waited.put(time.monotonic() - started)

    child = ctx.Process(target=other)
    child.start()
    with turn:
        with turn:  # re-entrant: leaving the inner turn keeps the outer one held
            held.set()
        time.sleep(0.3)  # on purpose: the turn is held this long, and the other process must wait it out
    assert waited.get(timeout=10) >= 0.25
    child.join(10)
    turn.close()


def test_events_built_in_python_with_int_and_float_times_are_stored_together(db_url: str) -> None:
    """`UsageEvent(timestamp=1764000000)` beside a float one: PostgreSQL's array insert takes both."""
    store = Store(db_url)
    batch = [ev("int-ts", ts=int(T0), latency_ms=120), ev("float-ts", ts=T0 + 0.25, latency_ms=80.5)]
    assert store.write_events(batch).accepted == 2
    assert store.series_totals(["project"])[0].get("requests") == 2
    store.close()


def _keepalive_of_pooled_connection(store: Store) -> tuple[int, int, int, int]:
    """SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT of the socket the store's queries use."""
    with store.raw_cursor() as (cursor, _):
        cursor.execute("SELECT 1")
        # A dup: closing this socket object must not close the pooled connection's descriptor.
        with socket.socket(fileno=os.dup(cursor.connection.fileno())) as sock:
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            )


def test_postgresql_keepalives_notice_a_vanished_server_within_a_minute_not_two_hours(pg_url: str) -> None:
    # Without TCP keepalives a connection whose peer vanished (host gone, partition) hangs until the
    # kernel's default of about 2 h: keepalives probe after 30 s idle, every 10 s, 3 times.
    store = Store(pg_url)
    try:
        store.write_events([ev("k")])
        on, idle, interval, count = _keepalive_of_pooled_connection(store)
        assert on == 1
        assert (idle, interval, count) == (30, 10, 3)
    finally:
        store.close()


def test_keepalive_settings_in_the_database_url_win(pg_url: str) -> None:
    store = Store(f"{pg_url}?keepalives_idle=120&keepalives_count=5")
    try:
        on, idle, interval, count = _keepalive_of_pooled_connection(store)
        assert (on, idle, interval, count) == (1, 120, 10, 5)
    finally:
        store.close()
    store = Store(f"{pg_url}?keepalives=0")  # turned off on purpose: stays off
    try:
        assert _keepalive_of_pooled_connection(store)[0] == 0
    finally:
        store.close()


def test_connect_timeout_and_options_in_the_database_url_are_kept(pg_url: str) -> None:
    # A user's statement_timeout (libpq `options`) and connect_timeout used to be replaced by llmcost's
    # own connect arguments; a read-only store adds its read-only setting to the user's options instead.
    Store(pg_url).close()  # the schema, so the read-only store may open it
    store = Store(f"{pg_url}?connect_timeout=11&options=-c%20statement_timeout%3D4321", read_only=True)
    try:
        with store.raw_cursor() as (cursor, _):
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "4321ms"
            cursor.execute("SHOW default_transaction_read_only")
            assert cursor.fetchone()[0] == "on"
            assert cursor.connection.info.get_parameters()["connect_timeout"] == "11"
    finally:
        store.close()


def test_a_pool_whose_every_connection_is_held_is_store_unavailable_not_an_internal_error(pg_url: str) -> None:
    """While PostgreSQL hung (paused), every pooled connection stayed with a query it did not answer; the
    next request waited `pool_timeout` and failed with SQLAlchemy's TimeoutError: a 500 with a traceback,
    and `POST /v1/budgets/check` answered 500 instead of its `fail_mode`. It is StoreUnavailable now."""
    store = Store(pg_url, pool_timeout=0.2)
    held = [store.engine.connect() for _ in range(16)]  # pool_size 8 + max_overflow 8: all of them
    try:
        for read in (store.event_count, store.counters, lambda: store.series_totals(("provider",))):
            with pytest.raises(StoreUnavailable, match="QueuePool limit"):
                read()
        with pytest.raises(StoreUnavailable), store.raw_cursor():
            pass
        with pytest.raises(StoreUnavailable), store.transaction():
            pass
        with pytest.raises(StoreUnavailable):
            store.write_events([ev("held")])
    finally:
        for conn in held:
            conn.close()
    assert store.write_events([ev("free")]).accepted == 1
    store.close()


def test_postgresql_connections_are_named_llmcost_unless_the_url_names_them(pg_url: str) -> None:
    # pg_stat_activity showed an empty application_name: an operator at max_connections could not tell
    # llmcost's connections from the others.
    def names(store: Store) -> set[str]:
        with store.raw_cursor() as (cursor, _):
            cursor.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            return {row[0] for row in cursor.fetchall()}

    store = Store(pg_url)
    try:
        assert names(store) == {"llmcost"}
    finally:
        store.close()
    store = Store(f"{pg_url}?application_name=llmcost-eu")
    try:
        assert names(store) == {"llmcost-eu"}
    finally:
        store.close()


def test_postgresql_drops_a_connection_whose_query_goes_unacknowledged_for_a_minute(pg_url: str) -> None:
    # A query sent into a network partition is retransmitted by the kernel for ~15 minutes, holding the
    # request's thread and pooled connection that long: TCP_USER_TIMEOUT ends it after 60 s (keepalives
    # only probe idle connections). A value in the URL wins.
    def user_timeout(store: Store) -> int:
        with store.raw_cursor() as (cursor, _):
            cursor.execute("SELECT 1")
            with socket.socket(fileno=os.dup(cursor.connection.fileno())) as sock:
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)

    for url, expected in ((pg_url, 60_000), (f"{pg_url}?tcp_user_timeout=5000", 5_000)):
        store = Store(url)
        try:
            assert user_timeout(store) == expected
        finally:
            store.close()
