"""Identifier handling, duplicates, out-of-order packets, retransmission with a fake clock."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ike.eap.events import AuthenticationFailed, PacketDropped, Retransmitted
from ike.eap.methods import (
    Md5PeerMethod,
    MsChapV2PeerMethod,
    StaticPasswords,
    md5_server_factory,
    mschapv2_server_factory,
)
from ike.eap.packet import (
    EapFailure,
    EapRequest,
    EapResponse,
    EapStateError,
    EapSuccess,
    EapType,
    parse,
)
from ike.eap.peer import EapPeer, PeerState
from ike.eap.server import EapServer, ServerState

USERS = StaticPasswords({"alice": "pw-alice"})
MD5: tuple[int, Any] = (EapType.MD5_CHALLENGE, md5_server_factory(USERS))
MSCHAPV2: tuple[int, Any] = (EapType.MSCHAPV2, mschapv2_server_factory(USERS))


def _mschap_peer(**kw: Any) -> EapPeer:
    return EapPeer(
        b"alice", [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "pw-alice"))], **kw
    )


def _last_dropped(events: list[Any]) -> str:
    dropped = [e for e in events if isinstance(e, PacketDropped)]
    assert dropped, "expected a dropped packet"
    return str(dropped[-1].reason)


def test_duplicate_response_is_ignored() -> None:
    server = EapServer([MSCHAPV2], initial_identifier=0)
    peer = _mschap_peer()
    ident = peer.receive(server.start())
    assert ident is not None
    challenge = server.receive(ident)
    assert challenge is not None
    # The Identity Response again (a duplicate of an answered Response): discarded.
    assert server.receive(ident) is None
    assert _last_dropped(server.events) == "duplicate Response identifier 1 (expected 2)"
    response = peer.receive(challenge)
    assert response is not None
    success_req = server.receive(response)
    assert success_req is not None
    # The same Response delivered twice: the second is discarded, not re-processed.
    assert server.receive(response) is None
    assert _last_dropped(server.events).startswith("duplicate Response identifier 2")
    assert server.state is ServerState.METHOD


def test_response_with_a_wrong_identifier_is_dropped() -> None:
    server = EapServer([MD5], initial_identifier=100)
    server.start()  # Identity Request id 101
    assert server.receive(EapResponse(7, EapType.IDENTITY, b"alice").to_bytes()) is None
    assert _last_dropped(server.events) == "unexpected Response identifier 7 (expected 101)"
    assert server.state is ServerState.IDENTITY
    # The right one still works afterwards.
    assert server.receive(EapResponse(101, EapType.IDENTITY, b"alice").to_bytes()) is not None


def test_out_of_order_packets_and_wrong_codes() -> None:
    server = EapServer([MD5], initial_identifier=0)
    server.start()
    # A method Response before the Identity exchange finished: no transition, dropped.
    early = EapResponse(1, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).to_bytes()
    assert server.receive(early) is None
    assert "not expected in state identity" in _last_dropped(server.events)
    # Requests, Success and Failure are never valid input for the authenticator.
    for pkt in (EapRequest(1, 1), EapSuccess(1), EapFailure(1)):
        assert server.receive(pkt.to_bytes()) is None
    assert server.state is ServerState.IDENTITY
    # A Response of another type than the running method's is discarded (RFC 4137 DISCARD).
    md5_req = server.receive(EapResponse(1, 1, b"alice").to_bytes())
    assert md5_req is not None
    assert server.receive(EapResponse(2, EapType.GTC, b"x").to_bytes()) is None
    assert server.state.value == ServerState.METHOD.value


def test_peer_answers_a_retransmitted_request_from_its_cache() -> None:
    server = EapServer([MSCHAPV2])
    peer = _mschap_peer()
    ident = peer.receive(server.start())
    challenge = server.receive(ident or b"")
    assert challenge is not None
    first = peer.receive(challenge)
    again = peer.receive(challenge)
    # The MS-CHAPv2 peer picks a fresh random peer challenge per computation: equality shows
    # the method was not run twice.
    assert first is not None and first == again
    assert Retransmitted(parse(challenge).identifier, 1) in peer.events
    out = server.receive(first)
    while out is not None:
        resp = peer.receive(out)
        out = server.receive(resp) if resp is not None else None
    assert server.succeeded and peer.succeeded and server.msk == peer.msk


def test_peer_treats_same_id_different_content_as_new_request() -> None:
    peer = EapPeer(b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("pw-alice"))])
    assert peer.receive(EapRequest(5, 1).to_bytes()) is not None
    resp = peer.receive(EapRequest(5, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).to_bytes())
    # RFC 3748 5.4 / RFC 1994: MD5(Identifier || secret || challenge), here with Identifier 5.
    value = hashlib.md5(b"\x05" + b"pw-alice" + bytes(16)).digest()
    assert resp == EapResponse(5, EapType.MD5_CHALLENGE, b"\x10" + value).to_bytes()


def test_peer_drops_success_with_an_unrelated_identifier() -> None:
    peer = EapPeer(b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("pw-alice"))])
    peer.receive(EapRequest(5, 1).to_bytes())
    peer.receive(EapRequest(6, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).to_bytes())
    assert peer.state is PeerState.METHOD_DONE
    assert peer.receive(EapSuccess(99).to_bytes()) is None
    assert _last_dropped(peer.events) == "EapSuccess identifier 99 does not follow 6"
    assert peer.receive(EapSuccess(6).to_bytes()) is None
    assert peer.succeeded
    # After the end everything is dropped.
    assert peer.receive(EapRequest(7, 1).to_bytes()) is None
    assert _last_dropped(peer.events) == "conversation already finished"


def test_server_retransmits_with_a_fake_clock_then_gives_up() -> None:
    server = EapServer([MD5], retransmit_timeout=3.0, max_retransmits=2, initial_identifier=0)
    first = server.start(now=100.0)
    assert server.next_timeout() == 103.0
    assert server.handle_timeout(102.9) is None
    assert server.handle_timeout(103.0) == first
    assert server.next_timeout() == 106.0
    assert server.handle_timeout(106.5) == first
    assert server.events[-1] == Retransmitted(1, 2)
    assert server.handle_timeout(109.5) is None
    assert server.failed and server.next_timeout() is None
    assert server.failure_reason == "no Response after 2 retransmissions in state identity"
    assert isinstance(server.events[-1], AuthenticationFailed)


def test_server_timer_follows_the_conversation() -> None:
    server = EapServer([MD5], retransmit_timeout=3.0, initial_identifier=0)
    server.start(now=0.0)
    md5_req = server.receive(EapResponse(1, 1, b"alice").to_bytes(), now=2.0)
    assert md5_req is not None and server.next_timeout() == 5.0
    # A dropped packet does not re-arm or cancel the timer.
    assert server.receive(EapResponse(9, 1, b"alice").to_bytes(), now=4.0) is None
    assert server.next_timeout() == 5.0
    assert server.handle_timeout(5.0) == md5_req
    # The peer answers the retransmission: the conversation ends, no timer is left.
    peer_method = Md5PeerMethod("pw-alice")
    peer_method.set_identifier(2)
    step = peer_method.receive(parse(md5_req).type_data)  # type: ignore[union-attr]
    assert step.reply is not None
    out = server.receive(EapResponse(2, 4, step.reply).to_bytes(), now=6.0)
    assert out == EapSuccess(2).to_bytes()
    assert server.succeeded and server.next_timeout() is None
    assert server.handle_timeout(100.0) is None


def test_no_timer_without_a_clock() -> None:
    # RADIUS and IKEv2 retransmit below EAP: without ``now`` the server never arms a timer.
    server = EapServer([MD5])
    server.start()
    assert server.next_timeout() is None


def test_peer_idle_timeout() -> None:
    peer = EapPeer(b"alice", [], idle_timeout=30.0)
    assert peer.next_timeout() is None
    assert peer.receive(EapRequest(1, 1).to_bytes(), now=10.0) is not None
    assert peer.next_timeout() == 40.0
    assert peer.handle_timeout(39.0) is None and not peer.failed
    assert peer.handle_timeout(40.0) is None
    assert peer.failed
    assert peer.failure_reason == "no Request from the authenticator for 30.0 s"


def test_peer_retransmission_rearms_idle_timer() -> None:
    peer = EapPeer(b"alice", [], idle_timeout=30.0)
    req = EapRequest(1, 1).to_bytes()
    peer.receive(req, now=0.0)
    peer.receive(req, now=20.0)
    assert peer.next_timeout() == 50.0


def test_start_twice_is_a_local_error() -> None:
    server = EapServer([MD5])
    server.start()
    with pytest.raises(EapStateError):
        server.start()


def test_peer_drops_a_late_copy_of_an_earlier_request() -> None:
    # Found by the lossy-network test: a retransmitted Challenge overtaken by the Success
    # Request must not restart MS-CHAPv2 on the peer.
    server = EapServer([MSCHAPV2], initial_identifier=0)
    peer = _mschap_peer()
    challenge = server.receive(peer.receive(server.start()) or b"")
    assert challenge is not None
    success_req = server.receive(peer.receive(challenge) or b"")
    assert success_req is not None
    ack = peer.receive(success_req)
    assert ack is not None
    assert peer.receive(challenge) is None
    assert _last_dropped(peer.events) == (
        "late copy of an earlier EAP-MSCHAPv2 Request (identifier 2)"
    )
    final = server.receive(ack)
    assert final is not None and peer.receive(final) is None
    assert server.succeeded and peer.succeeded and peer.msk == server.msk
