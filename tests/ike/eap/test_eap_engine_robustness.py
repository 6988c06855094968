"""Unexpected input ends in a discard or a clean failure, never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap.method import Decision, Step
from ike.eap.methods import (
    GtcPeerMethod,
    GtcServerMethod,
    Md5PeerMethod,
    Md5ServerMethod,
    MsChapV2PeerMethod,
    MsChapV2ServerMethod,
    StaticPasswords,
    md5_server_factory,
    mschapv2_server_factory,
)
from ike.eap.packet import (
    EapFailure,
    EapRequest,
    EapResponse,
    EapType,
    ExpandedType,
    encode_expanded,
    parse,
    parse_expanded_nak,
)
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer

USERS = StaticPasswords({"alice": "pw-alice"})
SERVER_METHODS: list[tuple[int, Any]] = [
    (EapType.MSCHAPV2, mschapv2_server_factory(USERS)),
    (EapType.MD5_CHALLENGE, md5_server_factory(USERS)),
]


def _peer() -> EapPeer:
    return EapPeer(
        b"alice",
        [
            (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "pw-alice")),
            (EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("pw-alice")),
        ],
    )


packets = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda code, ident, typ, data: (
            bytes((code, ident)) + (5 + len(data)).to_bytes(2, "big") + bytes((typ,)) + data
        ),
        st.integers(1, 4),
        st.integers(0, 255),
        st.sampled_from([1, 2, 3, 4, 6, 26, 254, 99]),
        st.binary(max_size=60),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.lists(packets, max_size=6))
def test_server_survives_any_input(rounds: int, junk: list[bytes]) -> None:
    """Advance an honest conversation a few rounds, then feed arbitrary packets."""
    server = EapServer(SERVER_METHODS, initial_identifier=0)
    peer = _peer()
    out: bytes | None = server.start(now=0.0)
    for _ in range(rounds):
        if out is None:
            break
        resp = peer.receive(out)
        out = server.receive(resp) if resp is not None else None
    for i, data in enumerate(junk):
        result = server.receive(data, now=float(i))
        assert result is None or isinstance(result, bytes)
        if result is not None:
            parse(result)  # whatever we send is a valid packet
        server.handle_timeout(float(i) + 10.0)
    assert server.succeeded or server.failed or not server.done


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.lists(packets, max_size=6))
def test_peer_survives_any_input(rounds: int, junk: list[bytes]) -> None:
    server = EapServer(SERVER_METHODS, initial_identifier=0)
    peer = _peer()
    out: bytes | None = server.start()
    for _ in range(rounds):
        if out is None:
            break
        resp = peer.receive(out)
        out = server.receive(resp) if resp is not None else None
    for i, data in enumerate(junk):
        result = peer.receive(data, now=float(i))
        assert result is None or isinstance(result, bytes)
        if result is not None:
            assert isinstance(parse(result), EapResponse)
    # Junk alone can never authenticate the peer: success needs the method to finish.
    if peer.succeeded:
        assert peer.completed_methods


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_methods_turn_garbage_into_failure(data: bytes) -> None:
    server_methods: list[Any] = [
        Md5ServerMethod(b"alice", USERS),
        MsChapV2ServerMethod(b"alice", USERS),
        GtcServerMethod(b"alice", lambda i, p: False),
    ]
    for m in server_methods:
        m.start()
        if hasattr(m, "set_identifier"):
            m.set_identifier(1)
        step = m.receive(data)
        assert step.decision in (Decision.FAILURE, Decision.CONTINUE, Decision.SUCCESS)
        if step.decision is Decision.FAILURE:
            assert m.failure_reason
    peer_methods: list[Any] = [Md5PeerMethod("x"), MsChapV2PeerMethod(b"a", "x")]
    for p in peer_methods:
        if hasattr(p, "set_identifier"):
            p.set_identifier(1)
        step = p.receive(data)
        if step.decision is Decision.FAILURE:
            assert p.failure_reason


def test_malformed_mschapv2_response_fails_cleanly() -> None:
    server = EapServer(SERVER_METHODS[:1], initial_identifier=0)
    server.start()
    challenge = server.receive(EapResponse(1, 1, b"alice").to_bytes())
    assert challenge is not None
    bad = EapResponse(2, EapType.MSCHAPV2, b"\x02\x00\x00\x0cshort").to_bytes()
    out = server.receive(bad)
    assert out == EapFailure(2).to_bytes()
    assert server.failure_reason is not None
    assert server.failure_reason.startswith("malformed MS-CHAPv2 Response: MS-Length 12")


def test_peer_answers_an_unknown_expanded_request_with_an_expanded_nak() -> None:
    peer = _peer()
    data = encode_expanded(ExpandedType(0x9677, 7), b"vendor stuff")
    out = peer.receive(EapRequest(3, EapType.EXPANDED, data).to_bytes())
    assert out is not None
    resp = parse(out)
    assert isinstance(resp, EapResponse) and resp.eap_type == EapType.EXPANDED
    assert parse_expanded_nak(resp.type_data) == (
        ExpandedType(0, EapType.MSCHAPV2),
        ExpandedType(0, EapType.MD5_CHALLENGE),
    )


def test_notification_in_the_middle_of_a_method() -> None:
    server = EapServer(SERVER_METHODS[:1], initial_identifier=0)
    peer = _peer()
    challenge = server.receive(peer.receive(server.start()) or b"")
    assert challenge is not None
    note = peer.receive(EapRequest(77, EapType.NOTIFICATION, b"maintenance at 5").to_bytes())
    assert note == EapResponse(77, EapType.NOTIFICATION).to_bytes()
    out: bytes | None = challenge
    while out is not None:
        resp = peer.receive(out)
        out = server.receive(resp) if resp is not None else None
    assert server.succeeded and peer.succeeded


class _Exploding:
    """A server method with a bug: the EAP layer must fail the conversation, not raise."""

    eap_type = 200

    def start(self) -> bytes:
        return b"go"

    def receive(self, type_data: bytes) -> Step:
        raise RuntimeError("boom")

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    failure_reason = None


def test_a_method_that_raises_fails_the_conversation() -> None:
    server = EapServer([(200, lambda identity: _Exploding())], initial_identifier=0)
    server.start()
    assert server.receive(EapResponse(1, 1, b"alice").to_bytes()) is not None
    out = server.receive(EapResponse(2, 200, b"x").to_bytes())
    assert out == EapFailure(2).to_bytes()
    assert server.failure_reason == "EAP-200 error: boom"


def test_a_factory_that_raises_fails_the_conversation() -> None:
    def factory(identity: bytes) -> Any:
        raise LookupError("no such backend")

    server = EapServer([(200, factory)], initial_identifier=0)
    server.start()
    out = server.receive(EapResponse(1, 1, b"alice").to_bytes())
    assert out == EapFailure(1).to_bytes()
    assert server.failure_reason == "could not start EAP-200: no such backend"


def test_gtc_with_prompt_callback_and_custom_check() -> None:
    seen: list[tuple[bytes, str]] = []

    def check(identity: bytes, token: str) -> bool:
        seen.append((identity, token))
        return token == "123456"

    server = GtcServerMethod(b"alice", check, prompt=b"Token: ")
    peer = GtcPeerMethod(lambda prompt: "123456" if prompt == b"Token: " else "")
    step = peer.receive(server.start())
    assert step.reply == b"123456" and step.decision is Decision.SUCCESS
    assert server.receive(step.reply).decision is Decision.SUCCESS
    assert seen == [(b"alice", "123456")]
    assert server.receive(b"\xff\xfe").decision is Decision.FAILURE
    assert server.failure_reason == "EAP-GTC response is not UTF-8"


def test_mschapv2_server_with_stored_nt_hashes() -> None:
    from ike.eap.mschapv2 import nt_password_hash

    server = MsChapV2ServerMethod(
        b"alice", nt_hash_lookup=lambda i: nt_password_hash("pw-alice"), challenge=bytes(16)
    )
    peer = MsChapV2PeerMethod(b"alice", "pw-alice", peer_challenge=bytes(range(16)))
    step = peer.receive(server.start())
    assert step.reply is not None
    success_req = server.receive(step.reply)
    assert success_req.reply is not None and success_req.reply[4:6] == b"S="
    final = peer.receive(success_req.reply)
    assert final == Step(b"\x03", Decision.SUCCESS)
    assert server.receive(b"\x03") == Step(None, Decision.SUCCESS)
    assert server.master_keys == peer.master_keys and server.msk() == peer.msk()


def test_mschapv2_fixed_peer_challenge_as_in_eap_fast_provisioning() -> None:
    fixed = bytes(range(16, 32))
    for peer_side, ok in ((fixed, True), (bytes(16), False)):
        server = MsChapV2ServerMethod(
            b"alice", USERS, challenge=bytes(range(16)), peer_challenge=fixed
        )
        peer = MsChapV2PeerMethod(b"alice", "pw-alice", peer_challenge=peer_side)
        step = peer.receive(server.start())
        assert step.reply is not None
        answer = server.receive(step.reply)
        assert (answer.decision is Decision.CONTINUE) is ok


def test_mschapv2_peer_tolerates_a_wrong_ms_length_unless_strict() -> None:
    server = MsChapV2ServerMethod(b"alice", USERS)
    challenge = bytearray(server.start())
    challenge[2:4] = (len(challenge) + 3).to_bytes(2, "big")  # a server with a broken MS-Length
    lenient = MsChapV2PeerMethod(b"alice", "pw-alice").receive(bytes(challenge))
    assert lenient.decision is Decision.CONTINUE and lenient.reply is not None
    assert server.receive(lenient.reply).decision is Decision.CONTINUE  # Success Request
    strict = MsChapV2PeerMethod(b"alice", "pw-alice", strict_ms_length=True)
    step = strict.receive(bytes(challenge))
    assert step == Step(None, Decision.FAILURE)
    assert strict.failure_reason is not None and "MS-Length" in strict.failure_reason
