"""The CoA / Disconnect client engine against a scripted NAS, fake clock."""

from __future__ import annotations

import pytest

from radius import (
    AttributeType,
    Code,
    DynamicAuthorizationAcked,
    DynamicAuthorizationClient,
    DynamicAuthorizationNaked,
    DynamicAuthorizationTimedOut,
    ErrorCause,
    IntegerAttribute,
    LocalProtocolError,
    Packet,
    TextAttribute,
    encode_response,
    verify_request,
)

T = AttributeType
SECRET = b"coa-secret"
NAS = ("192.0.2.20", 3799)


def answer(datagram: bytes, code: Code, *attributes, secret: bytes = SECRET) -> bytes:
    request = verify_request(datagram, secret)
    return encode_response(
        Packet(code, request.identifier, attributes=attributes), request.authenticator, secret
    )


def test_disconnect_acked() -> None:
    client = DynamicAuthorizationClient()
    handle = client.send(
        Code.DISCONNECT_REQUEST, [TextAttribute(T.ACCT_SESSION_ID, "s1")], NAS, SECRET, 0.0
    )
    ((datagram, destination),) = client.datagrams_to_send(0.0)
    assert destination == NAS
    request = verify_request(datagram, SECRET)
    assert request.code == Code.DISCONNECT_REQUEST
    assert request.text(T.ACCT_SESSION_ID) == "s1"
    client.receive_datagram(answer(datagram, Code.DISCONNECT_ACK), NAS, 0.1)
    event = client.next_event()
    assert isinstance(event, DynamicAuthorizationAcked) and event.handle == handle
    assert client.get_timer() is None


def test_coa_nak_carries_error_cause() -> None:
    client = DynamicAuthorizationClient()
    handle = client.send(Code.COA_REQUEST, [TextAttribute(T.USER_NAME, "bob")], NAS, SECRET, 0.0)
    ((datagram, _),) = client.datagrams_to_send(0.0)
    nak = answer(
        datagram,
        Code.COA_NAK,
        IntegerAttribute(T.ERROR_CAUSE, ErrorCause.SESSION_CONTEXT_NOT_FOUND),
    )
    client.receive_datagram(nak, NAS, 0.1)
    event = client.next_event()
    assert isinstance(event, DynamicAuthorizationNaked)
    assert event.handle == handle and event.error_cause == 503


def test_forged_or_mismatched_answers_are_ignored() -> None:
    client = DynamicAuthorizationClient()
    client.send(Code.COA_REQUEST, [TextAttribute(T.USER_NAME, "bob")], NAS, SECRET, 0.0)
    ((datagram, _),) = client.datagrams_to_send(0.0)
    request = verify_request(datagram, SECRET)
    forged = encode_response(
        Packet(Code.COA_ACK, request.identifier), request.authenticator, b"wrong"
    )
    client.receive_datagram(forged, NAS, 0.1)
    client.receive_datagram(answer(datagram, Code.COA_ACK), ("192.0.2.21", 3799), 0.1)
    client.receive_datagram(answer(datagram, Code.DISCONNECT_ACK), NAS, 0.1)
    assert client.next_event() is None
    client.receive_datagram(answer(datagram, Code.COA_ACK), NAS, 0.2)
    assert isinstance(client.next_event(), DynamicAuthorizationAcked)


def test_retransmits_same_bytes_with_backoff_then_times_out() -> None:
    client = DynamicAuthorizationClient(initial_timeout=1.0, max_timeout=4.0, max_transmissions=4)
    handle = client.send(Code.COA_REQUEST, [TextAttribute(T.USER_NAME, "bob")], NAS, SECRET, 0.0)
    sent = []
    now = 0.0
    while True:
        sent += [(now, d) for d, _ in client.datagrams_to_send(now)]
        client.handle_timer(now)
        event = client.next_event()
        if event is not None:
            break
        timer = client.get_timer()
        assert timer is not None
        now = timer
    assert isinstance(event, DynamicAuthorizationTimedOut) and event.handle == handle
    assert [t for t, _ in sent] == [0.0, 1.0, 3.0, 7.0]
    assert len({d for _, d in sent}) == 1  # RFC 5080 2.2.1: identical retransmissions
    assert now == 11.0


def test_identifiers_are_distinct_and_run_out_at_256() -> None:
    client = DynamicAuthorizationClient()
    for _ in range(256):
        client.send(Code.COA_REQUEST, [], NAS, SECRET, 0.0)
    ids = {d[1] for d, _ in client.datagrams_to_send(0.0)}
    assert len(ids) == 256
    with pytest.raises(LocalProtocolError):
        client.send(Code.COA_REQUEST, [], NAS, SECRET, 0.0)
    # Another NAS has its own identifier space.
    client.send(Code.COA_REQUEST, [], ("192.0.2.30", 3799), SECRET, 0.0)


def test_only_coa_and_disconnect_can_be_sent() -> None:
    with pytest.raises(LocalProtocolError):
        DynamicAuthorizationClient().send(Code.ACCESS_REQUEST, [], NAS, SECRET, 0.0)
