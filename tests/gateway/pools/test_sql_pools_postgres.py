"""SQL pools on a real PostgreSQL server (started by tests/harness/postgres.py): the same
semantics as on SQLite, and concurrent allocators in several processes that must never hand
out one address twice."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address as ip

import pytest

from gateway.pools import LeaseState, SqlPools
from gateway.pools.attributes import ConfigAttributeType as T
from gateway.pools.errors import PoolOverlap
from tests.gateway.pools import pool_workers
from tests.gateway.pools.pool_workers import prepare_pool, schema_drift
from tests.harness.postgres import fresh_database, postgres_url

__all__ = ["postgres_url"]  # the fixture, re-exported for pytest


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the session's server, dropped afterwards."""
    with fresh_database(postgres_url, "pools_") as url:
        yield url


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_semantics_on_postgresql(pg_url: str) -> None:
    clock = Clock()
    store = SqlPools(pg_url, clock=clock)
    store.add_pool("p", ip("10.3.0.1"), ip("10.3.0.2"), timeout=3600)
    a, b = store.acquire("p", "alice"), store.acquire("p", "bob")
    assert (a, b) == (ip("10.3.0.1"), ip("10.3.0.2"))
    assert store.acquire("p", "carol") is None
    assert a is not None and store.release("p", a, "alice")
    assert not store.release("p", a, "alice")
    assert [x.state for x in store.leases()] == [LeaseState.ONLINE, LeaseState.VALID]
    assert store.acquire("p", "alice") == a
    store.release("p", a, "alice")
    clock.now += 3601
    assert store.acquire("p", "carol") == a
    store.add_attribute(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]), pool="p")
    assert store.attributes("p", "carol") == [(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))]
    with pytest.raises(PoolOverlap):
        store.add_pool("q", ip("10.3.0.2"), ip("10.3.0.5"))
    store.close()
    restarted = SqlPools(pg_url, clock=clock)  # crash recovery on PostgreSQL
    assert restarted.status()[0].online == 0
    assert schema_drift(restarted) == []
    restarted.close()


@pytest.mark.parametrize(
    ("timeout", "expired"),
    [(0, False), (3600, False), (60, True)],
    ids=["static-fresh", "dynamic-fresh", "expired-reuse"],
)
def test_concurrent_allocators_on_postgresql(pg_url: str, timeout: int, expired: bool) -> None:
    prepare_pool(pg_url, 40, timeout, expired)
    held = pool_workers.run_concurrent_allocators(pg_url, "p", workers=5, count=12)
    assert len(held) == len(set(held)), sorted(held)
    check = SqlPools(pg_url, crash_recovery=False)
    st = check.status()[0]
    assert st.online == len(held)
    if timeout == 0:
        assert st.leased == 40  # 60 requests for 40 static addresses: every one handed out once
    check.close()
    assert all(int(ip("10.3.0.1")) <= int(ip(a)) <= int(ip("10.3.0.40")) for a in held)
