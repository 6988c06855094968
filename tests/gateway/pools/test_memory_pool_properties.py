"""Random acquire/release sequences against a model: a memory pool never gives an address to
two identities at once, releases only what is held, and a returning identity gets its
address back while nobody else took it."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pools import LeaseState, MemoryPool

IDS = ["alice", "bob", "carol", "dave", "eve"]
ADDRS = [ip_address(f"10.3.0.{i}") for i in range(1, 5)] + [ip_address("10.3.9.9")]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(IDS), st.none() | st.sampled_from(ADDRS)),
        st.tuples(st.just("release"), st.sampled_from(IDS), st.sampled_from(ADDRS)),
        st.tuples(st.just("tick"), st.integers(1, 50), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([0, 30]))
def test_pool_matches_the_model(sequence: list[tuple[str, object, object]], reassign: int) -> None:
    now = [1000.0]
    pool = MemoryPool("p", "10.3.0.1-10.3.0.4", reassign_after=reassign, clock=lambda: now[0])
    online: dict[object, tuple[str, int]] = {}  # address -> (identity, SAs using it)
    for op, who, arg in sequence:
        if op == "tick":
            now[0] += float(who)  # type: ignore[arg-type]
            continue
        assert isinstance(who, str)
        if op == "acquire":
            before_owner = {a: i for a, (i, _) in online.items()}
            got = pool.acquire(who, arg)  # type: ignore[arg-type]
            if got is None:
                continue
            assert got in ADDRS[:4]
            assert before_owner.get(got, who) == who, "address handed to a second identity"
            _, count = online.get(got, (who, 0))
            online[got] = (who, count + 1)
        else:
            expected = arg in online and online[arg][0] == who
            assert pool.release(arg, who) is expected  # type: ignore[arg-type]
            if expected:
                holder, count = online[arg]
                if count == 1:
                    del online[arg]
                else:
                    online[arg] = (holder, count - 1)
        st_ = pool.status()
        assert st_.online == len(online)
        states: dict[tuple[object, str], LeaseState] = {
            (x.address, x.identity): x.state for x in pool.leases()
        }
        for address, (identity, _) in online.items():
            assert states[(address, identity)] is LeaseState.ONLINE


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(IDS), min_size=1, max_size=30))
def test_returning_identity_gets_its_address_back(visits: list[str]) -> None:
    """Five identities, a pool of four, everybody leaves before the next one comes: whoever
    returns while their address was not given away gets exactly that address again."""
    pool = MemoryPool("p", "10.3.0.1-10.3.0.4")
    holder: dict[object, str] = {}
    had: dict[str, object] = {}
    for who in visits:
        got = pool.acquire(who)
        assert got is not None  # nobody is online, so the pool is never exhausted
        if who in had and holder.get(had[who]) == who:
            assert got == had[who]
        holder[got] = who
        had[who] = got
        assert pool.release(got, who)
