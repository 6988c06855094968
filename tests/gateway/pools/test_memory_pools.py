"""In-memory pools: allocation order, identity stickiness, release, exhaustion, memory use."""

from __future__ import annotations

import tracemalloc
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from gateway.pools import LeaseState, MemoryPool, MemoryPools, PoolProvider
from gateway.pools.attributes import ConfigAttributeType as T
from gateway.pools.errors import InvalidArgument, PoolExists, PoolOverlap


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_ipv4_addresses_in_order_then_exhausted() -> None:
    pool = MemoryPool("p", "10.3.0.0/29")  # .1 - .6
    got = [pool.acquire(f"user{i}") for i in range(7)]
    assert got[:6] == [ip_address(f"10.3.0.{i}") for i in range(1, 7)]
    assert got[6] is None
    st = pool.status()
    assert (st.size, st.online, st.leased) == (6, 6, 6)


def test_ipv6_pool_and_family_mismatch() -> None:
    pool = MemoryPool("v6", "fd00:1::/64")
    a = pool.acquire("alice")
    assert a == IPv6Address("fd00:1::1")
    assert pool.acquire("bob", requested=IPv4Address("0.0.0.0")) is None
    assert pool.acquire("bob", requested=IPv6Address("::")) == IPv6Address("fd00:1::2")
    assert pool.status().size == 2**64 - 2


def test_several_ranges_are_used_one_after_another() -> None:
    pool = MemoryPool("p", ["10.3.0.10-10.3.0.11", "10.3.5.1"])
    assert [pool.acquire(str(i)) for i in range(4)] == [
        ip_address("10.3.0.10"),
        ip_address("10.3.0.11"),
        ip_address("10.3.5.1"),
        None,
    ]
    assert pool.release(ip_address("10.3.5.1"), "2")


def test_returning_identity_gets_its_address_back() -> None:
    pool = MemoryPool("p", "10.3.0.0/24")
    a = pool.acquire("alice")
    b = pool.acquire("bob")
    assert a is not None and b is not None
    assert pool.release(a, "alice")
    assert pool.release(b, "bob")
    c = pool.acquire("carol")
    assert c not in (a, b)  # fresh addresses first: released ones stay reserved
    assert pool.acquire("bob") == b
    assert pool.acquire("alice") == a


def test_release_checks_the_holder() -> None:
    pool = MemoryPool("p", "10.3.0.0/24")
    a = pool.acquire("alice")
    assert a is not None
    assert not pool.release(a, "mallory")
    assert not pool.release(ip_address("10.3.0.77"), "alice")  # never leased
    assert not pool.release(ip_address("192.0.2.1"), "alice")  # not in pool
    assert pool.release(a, "alice")
    assert not pool.release(a, "alice")  # already offline
    st = pool.status()
    assert (st.online, st.leased) == (0, 1)


def test_same_identity_requesting_its_online_address_shares_it() -> None:
    pool = MemoryPool("p", "10.3.0.0/24")
    a = pool.acquire("alice")
    assert a is not None
    assert pool.acquire("alice", requested=a) == a  # second IKE_SA of the same peer
    other = pool.acquire("alice")  # no request: a second address
    assert other != a
    assert pool.release(a, "alice")
    assert pool.status().online == 2  # still held by the second SA
    assert pool.release(a, "alice")
    assert pool.status().online == 1
    assert pool.acquire("bob", requested=other) != other  # not bob's to share


def test_exhausted_pool_reassigns_the_oldest_offline_lease() -> None:
    clock = Clock()
    pool = MemoryPool("p", "10.3.0.1-10.3.0.2", reassign_after=600, clock=clock)
    a, b = pool.acquire("alice"), pool.acquire("bob")
    assert a is not None and b is not None
    assert pool.release(a, "alice")
    clock.now += 10
    assert pool.release(b, "bob")
    assert pool.acquire("carol") is None  # offline leases are still reserved
    assert {x.state for x in pool.leases()} == {LeaseState.VALID}
    clock.now += 600
    assert {x.state for x in pool.leases()} == {LeaseState.EXPIRED}
    assert pool.acquire("carol") == a  # alice's is the oldest
    assert pool.acquire("alice") == b  # alice lost hers; bob's is next
    assert pool.acquire("bob") is None
    leases = {(x.identity, str(x.address)) for x in pool.leases()}
    assert leases == {("carol", "10.3.0.1"), ("alice", "10.3.0.2")}


def test_a_slash_8_costs_what_its_leases_cost() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pool = MemoryPool("big", "10.0.0.0/8")
        for i in range(200):
            pool.acquire(f"user{i}")
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert pool.status().size == 2**24 - 2
    assert pool.status().online == 200
    # 16.7 M addresses; one bit each would be 2 MB. 200 leases must stay far below that.
    assert used < 200_000, used


def test_pools_from_config_with_attributes_and_quarantine() -> None:
    pools = MemoryPools.from_config(
        {
            "corp": {
                "addrs": "10.3.0.0/16",
                "dns": ["10.3.0.53", "fd00::53"],
                "split-include": "10.0.0.0/8",
                "identities": {"carol@example.org": {"banner": "hello carol"}},
            },
            "isolate": {
                "addrs": ["10.99.0.0/24"],
                "quarantine": True,
                "dns": "10.99.0.53",
                "banner": "isolated: see https://remediation.example/",
            },
            "v6": {"addrs": "fd00:3::/64"},
        },
        attributes={"nbns": "10.3.0.137"},
    )
    assert isinstance(pools, PoolProvider)
    assert pools.attributes("corp", "alice") == [
        (T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53])),
        (T.INTERNAL_IP6_DNS, IPv6Address("fd00::53").packed),
        (T.UNITY_SPLIT_INCLUDE, bytes([10, 0, 0, 0, 255, 0, 0, 0])),
    ]
    assert pools.attributes("corp", "carol@example.org") == [(T.UNITY_BANNER, b"hello carol")]
    quarantined = pools.attributes("isolate", "alice")
    assert (T.INTERNAL_IP4_DNS, bytes([10, 99, 0, 53])) in quarantined
    assert (T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53])) not in quarantined
    assert pools.attributes("v6", "alice") == [(T.INTERNAL_IP4_NBNS, bytes([10, 3, 0, 137]))]
    status = {s.name: s for s in pools.status()}
    assert status["isolate"].quarantine and not status["corp"].quarantine
    assert status["corp"].size == 65534
    # one pool shared by several connections: the identity keeps its address
    a = pools.acquire("corp", "alice")
    assert a is not None
    assert pools.release("corp", a, "alice")
    assert pools.acquire("corp", "alice") == a
    assert pools.acquire("nope", "alice") is None
    assert not pools.release("nope", a, "alice")


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ({"a": {"dns": "10.0.0.1"}}, InvalidArgument, "needs addrs"),
        ({"a": {"addrs": "10.0.0.0/24", "colour": "red"}}, InvalidArgument, "unknown key 'colour'"),
        ({"a": {"addrs": "10.0.0.0/24", "dns": "not-an-ip"}}, InvalidArgument, "invalid address"),
        ({"a": {"addrs": "10.0.0.0/24", "dns": 5}}, InvalidArgument, "expected a string"),
        ({"a": {"addrs": "10.0.0.0/24"}, "b": {"addrs": "10.0.0.128/25"}}, PoolOverlap, "overlaps"),
    ],
)
def test_bad_config_is_refused_with_a_reason(
    config: dict[str, dict[str, object]], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        MemoryPools.from_config(config)


def test_duplicate_pool_name() -> None:
    pools = MemoryPools()
    pools.add_pool("a", "10.0.0.0/24")
    with pytest.raises(PoolExists):
        pools.add_pool("a", "10.1.0.0/24")
