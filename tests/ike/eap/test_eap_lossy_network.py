"""Server and peer over a network that loses, duplicates and reorders packets (fake clock).

Whatever the network does, a peer never succeeds unless the server did, both ends that
succeed hold the same MSK, and a conversation whose packets all arrive ends in success.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap.methods import (
    Md5PeerMethod,
    MsChapV2PeerMethod,
    StaticPasswords,
    md5_server_factory,
    mschapv2_server_factory,
)
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer

USERS = StaticPasswords({"alice": "pw-alice"})


def _pair(chain: bool) -> tuple[EapServer, EapPeer]:
    server = EapServer(
        [(EapType.MSCHAPV2, mschapv2_server_factory(USERS))],
        chain=[(EapType.MD5_CHALLENGE, md5_server_factory(USERS))] if chain else [],
        retransmit_timeout=1.0,
        max_retransmits=6,
    )
    peer = EapPeer(
        b"alice",
        [
            (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "pw-alice")),
            (EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("pw-alice")),
        ],
        idle_timeout=20.0,
    )
    return server, peer


def _simulate(seed: int, loss: float, dup: float, chain: bool) -> tuple[EapServer, EapPeer]:
    rng = random.Random(seed)
    server, peer = _pair(chain)
    now = 0.0
    # (arrival time, sequence, destination, packet)
    in_flight: list[tuple[float, int, str, bytes]] = []
    seq = 0

    def send(dest: str, packet: bytes | None) -> None:
        nonlocal seq
        if packet is None:
            return
        copies = 1 + (rng.random() < dup)
        for _ in range(copies):
            if rng.random() >= loss:
                seq += 1
                in_flight.append((now + rng.uniform(0.01, 0.8), seq, dest, packet))

    send("peer", server.start(now=now))
    for _ in range(500):
        timers = [t for t in (server.next_timeout(), peer.next_timeout()) if t is not None]
        arrivals = [a[0] for a in in_flight]
        if not timers and not arrivals:
            break
        now = min(timers + arrivals)
        if arrivals and min(arrivals) <= now:
            in_flight.sort()
            _, _, dest, packet = in_flight.pop(0)
            if dest == "peer":
                send("server", peer.receive(packet, now=now))
            else:
                send("peer", server.receive(packet, now=now))
            continue
        send("peer", server.handle_timeout(now))
        peer.handle_timeout(now)
    return server, peer


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32),
    st.sampled_from([0.0, 0.1, 0.3]),
    st.sampled_from([0.0, 0.2, 0.5]),
    st.booleans(),
)
def test_invariants_on_a_lossy_network(seed: int, loss: float, dup: float, chain: bool) -> None:
    server, peer = _simulate(seed, loss, dup, chain)
    if peer.succeeded:
        assert server.succeeded
        assert peer.msk is not None and peer.msk == server.msk
    if server.succeeded and peer.succeeded:
        assert server.completed_methods == peer.completed_methods
    assert not (server.succeeded and server.failed)
    if loss == 0.0:
        # Duplicates and reordering alone never break a conversation.
        assert server.succeeded and peer.succeeded, (server.failure_reason, peer.failure_reason)


def test_heavy_loss_ends_in_a_retransmission_failure() -> None:
    results: list[Any] = [_simulate(seed, 0.9, 0.0, False)[0] for seed in range(20)]
    failed = [s for s in results if s.failed]
    assert failed, "90% loss should defeat some conversations"
    assert any(
        s.failure_reason and s.failure_reason.startswith("no Response after 6 retransmissions")
        for s in failed
    )
