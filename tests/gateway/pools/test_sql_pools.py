"""SQL pools on SQLite: lease states, timeout, identity reuse, static leases, crash recovery,
attributes, administration, and concurrent allocators in several processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv6Address, ip_address
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from gateway.pools import LeaseState, PoolProvider, SqlPools
from gateway.pools.attributes import ConfigAttributeType as T
from gateway.pools.errors import (
    InvalidArgument,
    NotResizable,
    PoolExists,
    PoolNotFound,
    PoolOverlap,
)
from gateway.pools.schema import VERSION_TABLE, addresses, leases
from gateway.pools.sql import LeaseFilter, normalize_url, parse_timeout
from tests.gateway.pools import pool_workers
from tests.gateway.pools.pool_workers import prepare_pool, schema_drift

ip = ip_address
HOUR = 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pools.db'}"


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[SqlPools]:
    s = SqlPools(url, clock=clock)
    yield s
    s.close()


def rows(store: SqlPools, table: object) -> int:
    with store.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_lease_states_follow_the_timeout(store: SqlPools, clock: Clock) -> None:
    assert isinstance(store, PoolProvider)
    store.add_pool("p", ip("10.3.0.1"), ip("10.3.0.254"), timeout=HOUR)
    a = store.acquire("p", "alice")
    assert a == ip("10.3.0.1")
    assert [x.state for x in store.leases()] == [LeaseState.ONLINE]
    clock.now += 100
    assert store.release("p", a, "alice")
    states = [(x.state, x.released) for x in store.leases()]
    assert states == [(LeaseState.VALID, int(clock.now))]
    st = store.status()[0]
    assert (st.size, st.online, st.leased) == (254, 0, 1)
    clock.now += HOUR + 1
    assert [x.state for x in store.leases()] == [LeaseState.EXPIRED]
    assert store.status()[0].leased == 0


def test_identity_reuse_and_expired_reassignment(url: str, store: SqlPools, clock: Clock) -> None:
    store.add_pool("p", ip("10.3.0.1"), ip("10.3.0.2"), timeout=HOUR)
    a, b = store.acquire("p", "alice"), store.acquire("p", "bob")
    assert (a, b) == (ip("10.3.0.1"), ip("10.3.0.2"))
    assert a is not None and b is not None
    assert store.acquire("p", "carol") is None  # exhausted
    assert store.release("p", a, "alice")
    clock.now += 10
    assert store.release("p", b, "bob")
    assert store.acquire("p", "carol") is None  # released leases are still valid
    # a restarted gateway (new process, same database) still knows alice
    again = SqlPools(url, clock=clock)
    assert again.acquire("p", "alice") == a
    clock.now += 10
    assert again.release("p", a, "alice")
    clock.now += HOUR + 1
    assert again.acquire("p", "carol") == b  # bob's expired first (alice refreshed hers)
    assert again.acquire("p", "dave") == a
    assert again.acquire("p", "bob") is None
    again.close()


def test_release_needs_the_holder_and_writes_history(store: SqlPools, clock: Clock) -> None:
    store.add_pool("p", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    a = store.acquire("p", "alice")
    assert a is not None
    assert not store.release("p", a, "mallory")
    assert not store.release("p", a, "nobody-ever-seen")
    assert not store.release("nope", a, "alice")
    assert store.release("p", a, "alice")
    assert not store.release("p", a, "alice")
    assert rows(store, leases) == 1
    assert store.acquire("p", "alice") == a
    assert store.release("p", a, "alice")
    assert rows(store, leases) == 2
    assert store.purge("p") == 2
    assert rows(store, leases) == 0


def test_static_address_list(store: SqlPools, clock: Clock) -> None:
    count = store.add_address_pool(
        "st", ["# static leases", "10.9.0.1=alice", "10.9.0.2", "", "10.9.0.3=bob"], timeout=0
    )
    assert count == 3
    assert store.acquire("st", "bob") == ip("10.9.0.3")
    assert store.acquire("st", "zed") == ip("10.9.0.2")  # the one without an owner
    assert store.acquire("st", "yan") is None  # alice's stays hers
    assert store.acquire("st", "alice") == ip("10.9.0.1")
    assert store.release("st", ip("10.9.0.2"), "zed")
    clock.now += 10 * 365 * 86400
    states = {(x.identity, x.state) for x in store.leases(LeaseFilter(pool="st"))}
    assert ("zed", LeaseState.STATIC) in states
    assert store.acquire("st", "yan") is None  # static: zed's address never expires
    assert store.acquire("st", "zed") == ip("10.9.0.2")
    st = store.status()[0]
    assert (st.size, st.online, st.leased, st.ranges) == (3, 3, 3, ("(address list)",))


def test_static_range_pool_binds_addresses_for_good(store: SqlPools, clock: Clock) -> None:
    store.add_pool("p", ip("10.4.0.1"), ip("10.4.0.2"), timeout=0)
    a = store.acquire("p", "alice")
    assert a is not None
    assert store.acquire("p", "bob") == ip("10.4.0.2")
    assert store.release("p", a, "alice")
    clock.now += 10**8
    assert store.acquire("p", "carol") is None
    assert store.acquire("p", "alice") == a


def test_crash_recovery_closes_online_leases(url: str, clock: Clock) -> None:
    first = SqlPools(url, clock=clock)
    first.add_pool("p", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    a = first.acquire("p", "alice")
    first.acquire("p", "bob")
    first.close()  # "crash": nothing released
    clock.now += 50
    shared = SqlPools(url, crash_recovery=False, clock=clock)
    assert shared.status()[0].online == 2  # several gateways on one database: left alone
    shared.close()
    restarted = SqlPools(url, clock=clock)
    assert restarted.status()[0].online == 0
    history = restarted.leases(LeaseFilter(identity="alice"))
    assert [(x.state, x.released) for x in history] == [(LeaseState.VALID, int(clock.now))]
    assert restarted.recover() == 0
    assert restarted.acquire("p", "alice") == a  # and alice still gets hers back
    restarted.close()


def test_attributes_global_pool_identity(store: SqlPools) -> None:
    store.add_pool("corp", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    assert store.attributes("corp", "alice") == []
    store.add_attribute(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))
    assert store.attributes("corp", "alice") == [(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))]
    store.add_attribute(T.UNITY_BANNER, b"corp", pool="corp")
    store.add_attribute(T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53]), pool="corp")
    store.add_attribute(T.UNITY_BANNER, b"carol's", pool="corp", identity="carol")
    # a quarantine pool defined in the config, with attributes in SQL
    store.add_attribute(T.UNITY_BANNER, b"isolated", pool="isolate")
    assert store.attributes("corp", "alice") == [
        (T.UNITY_BANNER, b"corp"),
        (T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53])),
    ]
    assert store.attributes("corp", "carol") == [(T.UNITY_BANNER, b"carol's")]
    assert store.attributes("isolate", "carol") == [(T.UNITY_BANNER, b"isolated")]
    assert store.attributes("other", "carol") == [(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))]
    assert store.delete_attributes(T.UNITY_BANNER, pool="corp") == 1
    assert store.delete_attributes(T.UNITY_BANNER, pool="corp") == 0
    assert store.delete_attributes(T.UNITY_BANNER, pool="corp", identity="carol") == 1
    assert store.attributes("corp", "carol") == [(T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53]))]
    with pytest.raises(InvalidArgument, match="--identity requires --pool"):
        store.add_attribute(T.UNITY_BANNER, b"x", identity="carol")
    listed = {(a.type, a.pool, a.identity) for a in store.list_attributes()}
    assert listed == {
        (T.INTERNAL_IP4_DNS, None, None),
        (T.INTERNAL_IP4_DNS, "corp", None),
        (T.UNITY_BANNER, "isolate", None),
    }


def test_a_slash_8_writes_no_address_rows(store: SqlPools) -> None:
    st = store.add_pool("big", ip("10.0.0.1"), ip("10.255.255.254"), timeout=HOUR)
    assert st.size == 2**24 - 2
    assert rows(store, addresses) == 0
    got = [store.acquire("big", f"u{i}") for i in range(3)]
    assert got == [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]
    assert rows(store, addresses) == 3
    assert store.status()[0].online == 3


def test_ipv6_pool_and_family(store: SqlPools) -> None:
    store.add_pool("v6", ip("fd00::1"), ip("fd00::ffff:ffff:ffff:ffff"), timeout=HOUR)
    assert store.acquire("v6", "alice", requested=ip("0.0.0.0")) is None
    assert store.acquire("v6", "alice", requested=IPv6Address("::")) == ip("fd00::1")
    assert store.status()[0].size == 2**64 - 1


def test_admin_errors(store: SqlPools) -> None:
    store.add_pool("a", ip("10.3.0.1"), ip("10.3.0.100"))
    with pytest.raises(PoolExists, match="--replace a"):
        store.add_pool("a", ip("10.5.0.1"), ip("10.5.0.9"))
    with pytest.raises(PoolOverlap, match="overlaps pool 'a'"):
        store.add_pool("b", ip("10.3.0.100"), ip("10.3.0.200"))
    store.add_address_pool("list", ["10.7.0.5", "10.7.0.9=alice"])
    with pytest.raises(
        PoolOverlap, match=re.escape("contains 10.7.0.5 of address-list pool 'list'")
    ):
        store.add_pool("c", ip("10.7.0.1"), ip("10.7.0.6"))
    with pytest.raises(PoolOverlap, match=re.escape("10.3.0.50 is already in pool 'a'")):
        store.add_address_pool("l2", ["10.3.0.50"])
    with pytest.raises(PoolOverlap, match=re.escape("10.7.0.9 is already in pool 'list'")):
        store.add_address_pool("l2", ["10.9.9.9", "10.7.0.9"])
    with pytest.raises(InvalidArgument, match=re.escape("line 2: address 10.8.0.1 listed twice")):
        store.add_address_pool("l3", ["10.8.0.1", "10.8.0.1"])
    with pytest.raises(InvalidArgument, match="reversed"):
        store.add_pool("d", ip("10.4.0.9"), ip("10.4.0.1"))
    with pytest.raises(PoolNotFound, match="pool 'zz' not found"):
        store.delete_pool("zz")
    with pytest.raises(NotResizable, match="address list"):
        store.resize("list", ip("10.7.0.200"))
    with pytest.raises(NotResizable, match="shrinking"):
        store.resize("a", ip("10.3.0.50"))
    store.add_pool("e", ip("10.3.1.1"), ip("10.3.1.9"))
    with pytest.raises(PoolOverlap, match="overlaps pool 'e'"):
        store.resize("a", ip("10.3.1.5"))
    assert store.resize("a", ip("10.3.0.200")) == 100
    assert {s.name: s.size for s in store.status()}["a"] == 200


def test_replace_and_delete(store: SqlPools) -> None:
    store.add_pool("a", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    a = store.acquire("a", "alice")
    assert a is not None and store.release("a", a, "alice")
    st = store.add_pool("a", ip("10.6.0.1"), ip("10.6.0.4"), replace=True)
    assert (st.size, st.ranges, st.leased) == (4, ("10.6.0.1-10.6.0.4",), 0)
    assert rows(store, addresses) == 0 and rows(store, leases) == 0
    store.delete_pool("a")
    assert store.status() == []


def test_lease_filters(store: SqlPools, clock: Clock) -> None:
    store.add_pool("a", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    store.add_pool("b", ip("10.4.0.1"), ip("10.4.0.9"), timeout=HOUR)
    t0 = int(clock.now)
    x = store.acquire("a", "alice")
    assert x is not None
    store.acquire("b", "bob")
    clock.now += 60
    store.release("a", x, "alice")
    clock.now += 60
    assert {x.identity for x in store.leases(LeaseFilter.parse("pool=b"))} == {"bob"}
    assert [x.state for x in store.leases(LeaseFilter.parse("id=alice"))] == [LeaseState.VALID]
    assert [x.identity for x in store.leases(LeaseFilter.parse("status=online"))] == ["bob"]
    assert [x.identity for x in store.leases(LeaseFilter.parse("tstamp"))] == ["bob"]
    at = store.leases(LeaseFilter.parse(f"tstamp={t0 + 30}"))
    assert sorted(x.identity for x in at) == ["alice", "bob"]
    assert [x.identity for x in store.leases(LeaseFilter.parse("addr=10.3.0.1"))] == ["alice"]
    assert store.leases(LeaseFilter.parse("pool=a,status=expired")) == []
    with pytest.raises(InvalidArgument, match="online, valid, expired or static"):
        LeaseFilter.parse("status=sleeping")
    with pytest.raises(InvalidArgument, match="invalid --filter item 'colour=red'"):
        LeaseFilter.parse("colour=red")
    with pytest.raises(PoolNotFound):
        store.leases(LeaseFilter(pool="zz"))
    dn = LeaseFilter.parse("id=C=CH, O=strongSwan, CN=carol,pool=a")
    assert (dn.identity, dn.pool) == ("C=CH, O=strongSwan, CN=carol", "a")


def test_schema_is_versioned_by_alembic(url: str, store: SqlPools) -> None:
    with store.engine.connect() as c:
        assert c.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == (
            "0001_pools_initial"
        )
    SqlPools(url).close()  # opening again is a no-op upgrade


@pytest.mark.parametrize(
    ("timeout", "expired"),
    [(0, False), (3600, False), (60, True)],
    ids=["static-fresh", "dynamic-fresh", "expired-reuse"],
)
def test_concurrent_processes_never_share_an_address(url: str, timeout: int, expired: bool) -> None:
    prepare_pool(url, 40, timeout, expired)
    held = pool_workers.run_concurrent_allocators(url, "p", workers=4, count=15)
    assert len(held) == len(set(held)), sorted(held)
    check = SqlPools(url, crash_recovery=False)
    st = check.status()[0]
    assert st.online == len(held)
    if timeout == 0:
        # static: released addresses stay with their identity, so all 40 were handed out once
        assert st.leased == 40
    check.close()


def test_migrations_match_the_tables_in_code(store: SqlPools) -> None:
    assert schema_drift(store) == []


def test_lease_history_can_be_turned_off(url: str, clock: Clock) -> None:
    store = SqlPools(url, lease_history=False, clock=clock)
    store.add_pool("p", ip("10.3.0.1"), ip("10.3.0.9"), timeout=HOUR)
    a = store.acquire("p", "alice")
    assert a is not None and store.release("p", a, "alice")
    assert rows(store, leases) == 0
    assert [x.state for x in store.leases()] == []  # only history and online leases are listed
    assert store.acquire("p", "alice") == a  # reuse does not depend on the history
    with pytest.raises(InvalidArgument, match="longer than 1024"):
        store.acquire("p", "x" * 1025)
    store.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db/pools", "postgresql+psycopg://u:p@db/pools"),
        ("postgres://u@/pools?host=/run/pg", "postgresql+psycopg://u@/pools?host=/run/pg"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:///var/nea-pool.db", "sqlite:///var/nea-pool.db"),
    ],
)
def test_postgresql_urls_use_psycopg3(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("24", 86400), ("0", 0), ("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800), (1, 3600)],
)
def test_timeouts_are_hours_unless_a_unit_is_given(given: str | int, seconds: int) -> None:
    assert parse_timeout(given) == seconds


@pytest.mark.parametrize("given", ["-1", "1.5", "2w", "", "soon"])
def test_bad_timeouts(given: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid timeout"):
        parse_timeout(given)
