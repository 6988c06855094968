"""EAP server and peer back to back: each method, Nak, chaining, Notification, keys."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ike.eap.events import (
    AuthenticationFailed,
    AuthenticationSucceeded,
    IdentityReceived,
    MethodCompleted,
    MethodNaked,
    MethodStarted,
    NotificationReceived,
    PacketDropped,
)
from ike.eap.method import EapPeerMethod, EapServerMethod
from ike.eap.methods import (
    GtcPeerMethod,
    GtcServerMethod,
    Md5PeerMethod,
    Md5ServerMethod,
    MsChapV2PeerMethod,
    MsChapV2ServerMethod,
    StaticPasswords,
    gtc_server_factory,
    md5_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap.packet import (
    EapFailure,
    EapRequest,
    EapResponse,
    EapSuccess,
    EapType,
    ExpandedType,
    encode_expanded_nak,
    parse,
)
from ike.eap.peer import EapPeer, PeerState
from ike.eap.server import EapServer, ServerState

USERS = StaticPasswords({"alice": "s3cret-Pass", "bob": "hunter2"})

MD5 = (EapType.MD5_CHALLENGE, md5_server_factory(USERS))
MSCHAPV2 = (EapType.MSCHAPV2, mschapv2_server_factory(USERS))
GTC = (EapType.GTC, gtc_server_factory(password_check(USERS)))


def peer_md5(password: str) -> tuple[int, object]:
    return (EapType.MD5_CHALLENGE, lambda: Md5PeerMethod(password))


def peer_mschapv2(user: bytes, password: str) -> tuple[int, object]:
    return (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(user, password))


def peer_gtc(password: str) -> tuple[int, object]:
    return (EapType.GTC, lambda: GtcPeerMethod(password))


def converse(server: EapServer, peer: EapPeer, max_rounds: int = 50) -> list[bytes]:
    """Run a whole conversation; return every packet in order (server first)."""
    transcript: list[bytes] = []
    out: bytes | None = server.start()
    for _ in range(max_rounds):
        assert out is not None
        transcript.append(out)
        resp = peer.receive(out)
        if resp is None:
            return transcript
        transcript.append(resp)
        out = server.receive(resp)
        if out is None:
            return transcript
    raise AssertionError("conversation did not end")


def _peer(*methods: Any, identity: bytes = b"alice") -> EapPeer:
    return EapPeer(identity, list(methods))


def test_methods_satisfy_the_contract() -> None:
    users = StaticPasswords({"a": "b"})
    for server_method in (
        Md5ServerMethod(b"a", users),
        MsChapV2ServerMethod(b"a", users),
        GtcServerMethod(b"a", lambda i, p: True),
    ):
        assert isinstance(server_method, EapServerMethod)
    pw = "Zq9-topsecret"
    for peer_method in (Md5PeerMethod(pw), MsChapV2PeerMethod(b"a", pw), GtcPeerMethod(pw)):
        assert isinstance(peer_method, EapPeerMethod)
        assert pw not in repr(peer_method)
    assert "b" not in repr(users).replace("users", "")


@pytest.mark.parametrize(
    ("server_method", "peer_method", "has_msk"),
    [
        (MD5, peer_md5("s3cret-Pass"), False),
        (MSCHAPV2, peer_mschapv2(b"alice", "s3cret-Pass"), True),
        (GTC, peer_gtc("s3cret-Pass"), False),
    ],
)
def test_each_method_succeeds(server_method: Any, peer_method: Any, has_msk: bool) -> None:
    server = EapServer([server_method])
    peer = _peer(peer_method)
    transcript = converse(server, peer)
    assert server.succeeded and peer.succeeded
    assert server.state is ServerState.SUCCESS and peer.state is PeerState.SUCCESS
    assert server.identity == b"alice"
    assert server.completed_methods == peer.completed_methods == (server_method[0],)
    assert isinstance(parse(transcript[-1]), EapSuccess)
    assert IdentityReceived(b"alice") in server.events
    assert AuthenticationSucceeded() in server.events and AuthenticationSucceeded() in peer.events
    if has_msk:
        assert server.msk is not None and server.msk == peer.msk
        assert len(server.msk) == 64 and server.msk[32:] == bytes(32)
        assert server.emsk is None and peer.emsk is None
    else:
        assert server.msk is None and peer.msk is None
    # Identifiers: every Request got a new one, every Response echoed it.
    reqs = [parse(p) for p in transcript[0::2]]
    resps = [parse(p) for p in transcript[1::2]]
    for req, resp in zip(reqs, resps, strict=False):
        assert req.identifier == resp.identifier
    ids = [r.identifier for r in reqs if isinstance(r, EapRequest)]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("server_method", "peer_method", "cause"),
    [
        (MD5, peer_md5("wrong"), "EAP-MD5 response does not match the password of b'alice'"),
        (MSCHAPV2, peer_mschapv2(b"alice", "wrong"), "NT-Response wrong for b'alice'"),
        (GTC, peer_gtc("wrong"), "EAP-GTC response rejected for b'alice'"),
    ],
)
def test_wrong_password_fails_with_a_log_line(
    server_method: Any, peer_method: Any, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ike.eap")
    server = EapServer([server_method])
    peer = _peer(peer_method)
    transcript = converse(server, peer)
    assert server.failed and peer.failed
    assert isinstance(parse(transcript[-1]), EapFailure)
    assert server.failure_reason is not None and cause in server.failure_reason
    assert AuthenticationFailed(server.failure_reason) in server.events
    assert any(
        r.name == "ike.eap.server" and cause in r.getMessage() and "failed" in r.getMessage()
        for r in caplog.records
    )
    # The password never reaches the log.
    assert not any("s3cret" in r.getMessage() or "wrong" == r.getMessage() for r in caplog.records)
    assert peer.msk is None and server.msk is None


MSCHAPV2_SEND_ERROR = (EapType.MSCHAPV2, mschapv2_server_factory(USERS, send_error=True))


def test_mschapv2_wrong_password_ends_in_eap_failure_by_default() -> None:
    server = EapServer([MSCHAPV2])
    peer = _peer(peer_mschapv2(b"alice", "wrong"))
    transcript = converse(server, peer)
    # Identity, Challenge, Response, then EAP-Failure at once (no MS-CHAPv2 Failure Request).
    assert len(transcript) == 5
    assert isinstance(parse(transcript[-1]), EapFailure)
    assert peer.failure_reason == "EAP-Failure received in EAP-MSCHAPv2"


def test_mschapv2_failure_request_reaches_the_peer() -> None:
    server = EapServer([MSCHAPV2_SEND_ERROR])
    peer = _peer(peer_mschapv2(b"alice", "wrong"))
    transcript = converse(server, peer)
    # Challenge, Response, Failure Request (E=691 R=0), Failure Response, EAP-Failure.
    failure_req = parse(transcript[-3])
    assert isinstance(failure_req, EapRequest) and failure_req.type_data[0] == 4
    assert b"E=691 R=0 C=" in failure_req.type_data and b"V=3" in failure_req.type_data
    assert parse(transcript[-2]) == EapResponse(failure_req.identifier, 26, b"\x04")
    assert parse(transcript[-1]) == EapFailure(failure_req.identifier)
    assert peer.failure_reason is not None
    assert "E=691 ERROR_AUTHENTICATION_FAILURE" in peer.failure_reason
    assert server.failure_reason == "MS-CHAPv2 NT-Response wrong for b'alice'"


def test_mschapv2_unknown_user_looks_like_a_wrong_password() -> None:
    server = EapServer([MSCHAPV2_SEND_ERROR])
    peer = _peer(peer_mschapv2(b"mallory", "x"), identity=b"mallory")
    converse(server, peer)
    assert server.failed and server.failure_reason == "unknown user b'mallory'"
    assert peer.failure_reason is not None and "E=691" in peer.failure_reason


def test_mschapv2_name_must_match_identity() -> None:
    server = EapServer([MSCHAPV2])
    peer = _peer(peer_mschapv2(b"bob", "hunter2"), identity=b"alice")
    converse(server, peer)
    assert server.failed
    assert server.failure_reason is not None and "differs from the EAP identity" in (
        server.failure_reason
    )


def test_mschapv2_domain_prefix_is_ignored() -> None:
    server = EapServer([MSCHAPV2])
    peer = _peer(peer_mschapv2(b"CORP\\alice", "s3cret-Pass"), identity=b"alice")
    converse(server, peer)
    assert server.succeeded and peer.succeeded and server.msk == peer.msk


def test_peer_rejects_a_server_that_does_not_know_the_password() -> None:
    # A rogue authenticator answers the Response with a made-up Success and then EAP-Success.
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"))
    peer.receive(EapRequest(1, 1).to_bytes())
    challenge = bytes((1, 7, 0, 21 + 4, 16)) + bytes(16) + b"evil"
    challenge = bytes((1, 7, 0, len(challenge))) + challenge[4:]
    assert peer.receive(EapRequest(2, 26, challenge).to_bytes()) is not None
    fake = b"S=" + b"0" * 40 + b" M=ok"
    success = bytes((3, 7, 0, 4 + len(fake))) + fake
    assert peer.receive(EapRequest(3, 26, success).to_bytes()) is None
    assert peer.failed
    assert peer.failure_reason == "MS-CHAPv2 authenticator response from the server is wrong"
    assert peer.receive(EapSuccess(3).to_bytes()) is None
    assert not peer.succeeded and peer.msk is None


def test_peer_refuses_success_before_any_method() -> None:
    peer = _peer(peer_mschapv2(b"alice", "x"))
    assert peer.receive(EapRequest(9, 1).to_bytes()) == EapResponse(9, 1, b"alice").to_bytes()
    assert peer.receive(EapSuccess(9).to_bytes()) is None
    assert peer.failed
    assert peer.failure_reason == "EAP-Success before any method completed on this side"


def test_peer_refuses_success_in_the_middle_of_mschapv2() -> None:
    server = EapServer([MSCHAPV2], initial_identifier=10)
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"))
    challenge = server.receive(peer.receive(server.start()) or b"")
    assert challenge is not None
    assert peer.receive(challenge) is not None
    assert peer.receive(EapSuccess(parse(challenge).identifier).to_bytes()) is None
    assert peer.failed


def test_nak_moves_to_the_peers_first_acceptable_alternative() -> None:
    server = EapServer([MD5, GTC, MSCHAPV2])
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"), peer_gtc("s3cret-Pass"))
    converse(server, peer)
    assert server.succeeded and peer.succeeded
    assert server.completed_methods == (EapType.MSCHAPV2,)
    assert MethodNaked(EapType.MD5_CHALLENGE, (EapType.MSCHAPV2, EapType.GTC)) in server.events
    assert MethodNaked(EapType.MD5_CHALLENGE, (EapType.MSCHAPV2, EapType.GTC)) in peer.events
    assert server.msk is not None and server.msk == peer.msk


def test_peer_naking_every_method_ends_in_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ike.eap")
    server = EapServer([MD5, GTC])
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"))
    transcript = converse(server, peer)
    assert server.failed and peer.failed
    assert isinstance(parse(transcript[-1]), EapFailure)
    reason = "peer refused EAP-MD5; it proposed EAP-MSCHAPv2, the server still offers EAP-GTC"
    assert server.failure_reason == reason
    assert any(reason in r.getMessage() for r in caplog.records)


def test_peer_without_any_method_naks_with_zero() -> None:
    server = EapServer([MD5])
    peer = _peer()
    transcript = converse(server, peer)
    nak = parse(transcript[-2])
    assert nak == EapResponse(nak.identifier, EapType.NAK, b"\x00")
    assert server.failed
    assert server.failure_reason == (
        "peer refused EAP-MD5; it proposed none, the server still offers none"
    )


def test_peer_naks_the_alternative_too() -> None:
    # The peer lists GTC, the server moves to GTC, and the peer then refuses it as well.
    server = EapServer([MD5, GTC])
    peer = EapPeer(b"alice", [(EapType.GTC, lambda: GtcPeerMethod("x"))])
    ident = peer.receive(server.start())
    assert ident is not None
    md5_req = server.receive(ident)
    assert md5_req is not None
    nak1 = peer.receive(md5_req)
    assert nak1 is not None
    assert parse(nak1) == EapResponse(parse(md5_req).identifier, EapType.NAK, b"\x06")
    gtc_req = server.receive(nak1)
    assert gtc_req is not None
    assert parse(gtc_req) == EapRequest(parse(nak1).identifier + 1, EapType.GTC, b"Password: ")
    # A second Nak, to an alternative the peer itself proposed: nothing is left.
    second = EapResponse(parse(gtc_req).identifier, EapType.NAK, b"\x04").to_bytes()
    out = server.receive(second)
    assert out is not None and isinstance(parse(out), EapFailure)
    assert server.failure_reason == (
        "peer refused EAP-GTC; it proposed EAP-MD5, the server still offers none"
    )


def test_expanded_nak_is_understood() -> None:
    server = EapServer([MD5, MSCHAPV2], initial_identifier=0)
    server.receive(EapResponse(0, 1, b"alice").to_bytes())
    nak = encode_expanded_nak([ExpandedType(0, EapType.MSCHAPV2)])
    out = server.receive(EapResponse(1, EapType.EXPANDED, nak).to_bytes())
    assert out is not None
    got = parse(out)
    assert isinstance(got, EapRequest) and got.eap_type == EapType.MSCHAPV2


def test_nak_in_the_middle_of_a_method_fails() -> None:
    server = EapServer([MSCHAPV2, MD5], initial_identifier=0)
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"))
    challenge = server.receive(peer.receive(server.start()) or b"")
    assert challenge is not None
    success_req = server.receive(peer.receive(challenge) or b"")
    assert success_req is not None
    ident = parse(success_req).identifier
    out = server.receive(EapResponse(ident, EapType.NAK, b"\x04").to_bytes())
    assert out == EapFailure(ident).to_bytes()
    assert server.failure_reason == "peer sent a Nak in the middle of EAP-MSCHAPv2"


def test_chaining_md5_then_mschapv2() -> None:
    server = EapServer([MD5], chain=[MSCHAPV2])
    peer = _peer(peer_md5("s3cret-Pass"), peer_mschapv2(b"alice", "s3cret-Pass"))
    converse(server, peer)
    assert server.succeeded and peer.succeeded
    assert server.completed_methods == (EapType.MD5_CHALLENGE, EapType.MSCHAPV2)
    assert peer.completed_methods == server.completed_methods
    started = [e.eap_type for e in server.events if isinstance(e, MethodStarted)]
    assert started == [EapType.MD5_CHALLENGE, EapType.MSCHAPV2]
    # MD5 has no keys: the MSK comes from the first method that exports one.
    assert server.msk is not None and server.msk == peer.msk


def test_chaining_md5_then_gtc_failure_fails_the_whole_conversation() -> None:
    server = EapServer([MD5], chain=[GTC])
    peer = _peer(peer_md5("s3cret-Pass"), peer_gtc("not-it"))
    converse(server, peer)
    assert server.failed and peer.failed
    assert MethodCompleted(EapType.MD5_CHALLENGE, True) in server.events
    assert server.failure_reason == "EAP-GTC response rejected for b'alice'"


def test_chained_method_refused_by_the_peer() -> None:
    server = EapServer([MD5], chain=[GTC])
    peer = _peer(peer_md5("s3cret-Pass"))
    converse(server, peer)
    assert server.failed
    assert server.failure_reason == "peer refused the chained method EAP-GTC"


def test_failure_notification_precedes_failure() -> None:
    server = EapServer([MD5], failure_notification="Access denied: see the helpdesk")
    peer = _peer(peer_md5("wrong"))
    transcript = converse(server, peer)
    note = parse(transcript[-3])
    assert isinstance(note, EapRequest) and note.eap_type == EapType.NOTIFICATION
    assert note.type_data == b"Access denied: see the helpdesk"
    assert parse(transcript[-2]) == EapResponse(note.identifier, EapType.NOTIFICATION)
    assert parse(transcript[-1]) == EapFailure(note.identifier)
    assert NotificationReceived(b"Access denied: see the helpdesk") in peer.events
    assert server.failed and peer.failed


def test_identity_pass_through_from_a_nas() -> None:
    # RFC 3579 2.1: the NAS did the Identity exchange; the first thing we see is its Response.
    server = EapServer([MD5])
    out = server.receive(EapResponse(42, EapType.IDENTITY, b"alice").to_bytes())
    assert out is not None
    req = parse(out)
    assert isinstance(req, EapRequest) and req.identifier == 43 and req.eap_type == 4
    assert server.identity == b"alice"


def test_preset_identity_skips_the_identity_exchange() -> None:
    server = EapServer([MSCHAPV2], identity=b"alice")
    first = parse(server.start())
    assert isinstance(first, EapRequest) and first.eap_type == EapType.MSCHAPV2
    peer = _peer(peer_mschapv2(b"alice", "s3cret-Pass"))
    out: bytes | None = first.to_bytes()
    while out is not None:
        resp = peer.receive(out)
        out = server.receive(resp) if resp is not None else None
    assert server.succeeded and peer.succeeded


def test_identity_prompt_and_initial_identifier() -> None:
    server = EapServer([MD5], initial_identifier=255, identity_prompt=b"\x00networkid=x")
    assert parse(server.start()) == EapRequest(0, 1, b"\x00networkid=x")


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        EapServer([])
    with pytest.raises(ValueError):
        EapServer([(EapType.NAK, MD5[1])])
    with pytest.raises(ValueError):
        EapServer([MD5], initial_identifier=256)
    with pytest.raises(ValueError, match="appears twice in methods"):
        EapServer([MD5, GTC, MD5])
    # The same method may run again as a chained method.
    EapServer([MD5], chain=[MD5])


def test_events_name_dropped_packets() -> None:
    server = EapServer([MD5])
    server.start()
    server.receive(b"\x02")
    assert isinstance(server.events[-1], PacketDropped)
    assert "malformed" in server.events[-1].reason
