"""Hypothesis over sequences of NAS requests against the server engine running the real
``ike.eap`` EAP server with EAP-MD5: whatever arrives, in whatever order, the engine answers
with a packet that verifies (Message-Authenticator first) or stays silent; it never raises."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap.methods.credentials import StaticPasswords
from ike.eap.methods.md5 import md5_server_factory
from ike.eap.packet import EapType
from ike.eap.server import EapServer
from radius import (
    AccessAccepted,
    AttributeType,
    Code,
    Packet,
    RadiusClient,
    RadiusServer,
    StringAttribute,
    eap_message_attributes,
    encode_request,
    verify_response,
)

T = AttributeType
SECRET = b"seq-secret"
NAS = ("192.0.2.10", 1645)
PASSWORDS = StaticPasswords({"bob": "hello"})


def _server() -> RadiusServer:
    return RadiusServer(
        [RadiusClient.from_prefix("192.0.2.10", SECRET)],
        lambda context: EapServer([(EapType.MD5_CHALLENGE, md5_server_factory(PASSWORDS))]),
        conversation_timeout=5.0,
    )


def _md5_answer(request: bytes, password: bytes) -> bytes:
    identifier, challenge = request[1], request[6 : 6 + request[5]]
    value = hashlib.md5(bytes([identifier]) + password + challenge).digest()
    return bytes([2, identifier, 0, 22, 4, 16]) + value


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("identity"), st.integers(0, 255)),
        st.tuples(st.just("answer"), st.sampled_from([b"hello", b"wrong"])),
        st.tuples(st.just("retransmit"), st.none()),
        st.tuples(st.just("eap-garbage"), st.binary(min_size=4, max_size=40)),
        st.tuples(st.just("forget-state"), st.none()),
        st.tuples(st.just("wait"), st.floats(0, 10)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(ACTIONS)
def test_any_request_sequence_gets_verifiable_answers_or_silence(actions) -> None:
    server = _server()
    now = 0.0
    state: bytes | None = None
    last_eap: bytes | None = None
    last_raw: bytes | None = None
    identifier = 0
    for action, arg in actions:
        if action == "wait":
            now += arg
            server.handle_timer(now)
            continue
        if action == "forget-state":
            state = None
            continue
        if action == "retransmit":
            if last_raw is None:
                continue
            raw = last_raw
        else:
            if action == "identity":
                eap = bytes([2, arg, 0, 8, 1]) + b"bob"
            elif action == "answer":
                if last_eap is None or last_eap[0] != 1 or last_eap[4] != 4:
                    continue
                eap = _md5_answer(last_eap, arg)
            else:
                eap = arg[:2] + len(arg).to_bytes(2, "big") + arg[4:]
            attributes = [*eap_message_attributes(eap)]
            if state is not None:
                attributes.append(StringAttribute(T.STATE, state))
            identifier = (identifier + 1) % 256
            raw = encode_request(
                Packet(Code.ACCESS_REQUEST, identifier, os.urandom(16), tuple(attributes)), SECRET
            )
        last_raw = raw
        out = server.receive_datagram(raw, NAS, now)
        if out is None:
            continue
        answer = verify_response(out, raw[4:20], SECRET, require_message_authenticator=True)
        assert answer.attributes[0].type == T.MESSAGE_AUTHENTICATOR
        assert answer.code in (Code.ACCESS_CHALLENGE, Code.ACCESS_ACCEPT, Code.ACCESS_REJECT)
        last_eap = answer.eap_message()
        state = answer.string(T.STATE)
        if answer.code == Code.ACCESS_ACCEPT:
            assert last_eap is not None and last_eap[0] == 3
    while (event := server.next_event()) is not None:
        if isinstance(event, AccessAccepted):
            assert event.user_name is None  # no User-Name attribute was sent


def test_real_md5_conversation_is_accepted() -> None:
    server = _server()
    identity = bytes([2, 9, 0, 8, 1]) + b"bob"
    raw = encode_request(
        Packet(Code.ACCESS_REQUEST, 1, os.urandom(16), eap_message_attributes(identity)), SECRET
    )
    challenge = verify_response(server.receive_datagram(raw, NAS, 0.0), raw[4:20], SECRET)
    eap = challenge.eap_message()
    assert eap is not None and eap[1] == 10 and eap[4] == EapType.MD5_CHALLENGE
    state = challenge.string(T.STATE)
    assert state is not None
    raw = encode_request(
        Packet(
            Code.ACCESS_REQUEST,
            2,
            os.urandom(16),
            (*eap_message_attributes(_md5_answer(eap, b"hello")), StringAttribute(T.STATE, state)),
        ),
        SECRET,
    )
    accept = verify_response(server.receive_datagram(raw, NAS, 0.1), raw[4:20], SECRET)
    assert accept.code == Code.ACCESS_ACCEPT
    assert accept.eap_message() == bytes([3, 10, 0, 4])
