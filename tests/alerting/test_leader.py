"""The database lease behind scheduler leadership, on real SQLite and PostgreSQL, with injected time."""

from __future__ import annotations

import threading

from alerting.leader import LeaderLease
from alerting.store import open_store

T0 = 1_795_000_000.0


def test_first_comer_leads_and_others_wait_until_the_lease_expires(db_url: str) -> None:
    store = open_store(db_url)
    a = LeaderLease(store, holder="a", ttl=15)
    b = LeaderLease(store, holder="b", ttl=15)
    assert store.dialect in ("sqlite", "postgresql")
    assert a.current() is None

    assert a.acquire(T0)
    assert not b.acquire(T0 + 1)
    assert a.acquire(T0 + 10)  # renewal: now valid until T0 + 25
    assert not b.acquire(T0 + 20)
    assert a.is_leader(T0 + 24) and not a.is_leader(T0 + 25)
    record = a.current()
    assert record is not None
    assert (record.holder, record.expires_at, record.acquired_at, record.term) == ("a", T0 + 25, T0, 1)

    # a stops renewing (crashed): b takes over exactly when the lease runs out, not before.
    assert not b.acquire(T0 + 24.9)
    assert b.acquire(T0 + 25)
    record = b.current()
    assert record is not None
    assert (record.holder, record.acquired_at, record.term) == ("b", T0 + 25, 2)
    # The old holder cannot renew a lease it lost, and knows it.
    assert not a.acquire(T0 + 26)
    assert not a.is_leader(T0 + 26)
    store.close()


def test_release_hands_the_lease_over_at_the_next_try(db_url: str) -> None:
    store = open_store(db_url)
    a = LeaderLease(store, holder="a", ttl=15)
    b = LeaderLease(store, holder="b", ttl=15)
    assert a.acquire(T0)
    assert not b.release(T0 + 1)  # releasing a lease one does not hold changes nothing
    assert not b.acquire(T0 + 1)
    assert a.release(T0 + 2)
    assert not a.is_leader(T0 + 2)
    assert b.acquire(T0 + 2)
    store.close()


def test_a_crashed_leader_is_replaced_within_ttl_plus_one_heartbeat(db_url: str) -> None:
    """Three processes try every heartbeat (phases offset); the leader dies; exactly one takes over in time."""
    store = open_store(db_url)
    ttl = 15.0
    leases = [LeaderLease(store, holder=f"p{i}", ttl=ttl) for i in range(3)]
    heartbeat = leases[0].heartbeat_seconds
    assert leases[0].failover_bound_seconds == ttl + heartbeat == 20.0
    phases = [0.0, 1.7, 3.1]
    dead: set[int] = set()
    leader_at: list[tuple[float, int]] = []
    last_renewal = {i: -1.0 for i in range(3)}
    died_at = None
    step = 0.1
    t = 0.0
    while t < 120:
        for i, lease in enumerate(leases):
            if i in dead:
                continue
            # Each process tries on its own heartbeat schedule.
            on_beat = t >= phases[i] and abs((t - phases[i]) / heartbeat - round((t - phases[i]) / heartbeat)) < 1e-9
            if on_beat and lease.acquire(T0 + t):
                last_renewal[i] = t
        holders = [i for i, lease in enumerate(leases) if i not in dead and lease.is_leader(T0 + t)]
        assert len(holders) <= 1, f"two leaders at t={t}: {holders}"
        if holders:
            leader_at.append((t, holders[0]))
        if died_at is None and t >= 40 and holders:
            died_at, victim = t, holders[0]
            dead.add(victim)  # kill -9: no release, no more renewals
        t = round(t + step, 6)
    assert died_at is not None
    successor = [(when, who) for when, who in leader_at if when > died_at]
    assert successor, "nobody took over"
    took_over, who = successor[0]
    assert who != victim
    assert took_over - last_renewal[victim] <= ttl + heartbeat + 1e-6
    assert took_over - last_renewal[victim] >= ttl  # and never while the dead leader's lease was valid
    store.close()


def test_racing_threads_elect_exactly_one_leader_per_round(db_url: str) -> None:
    """Separate stores (as separate processes would have) race for an expired lease at the same instant."""
    n_threads, rounds, ttl = 4, 12, 15.0
    stores = [open_store(db_url) for _ in range(n_threads)]
    leases = [LeaderLease(store, holder=f"t{i}", ttl=ttl) for i, store in enumerate(stores)]
    barrier = threading.Barrier(n_threads)
    wins: list[list[bool]] = [[False] * rounds for _ in range(n_threads)]
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=30)
                # Every round starts after the previous lease expired, so all threads compete equally.
                wins[i][r] = leases[i].acquire(T0 + r * (ttl + 1))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    for r in range(rounds):
        assert sum(wins[i][r] for i in range(n_threads)) == 1, f"round {r}: {[w[r] for w in wins]}"
    record = leases[0].current()
    assert record is not None and record.expires_at == T0 + (rounds - 1) * (ttl + 1) + ttl
    for store in stores:
        store.close()
