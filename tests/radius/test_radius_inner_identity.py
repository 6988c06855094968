"""The engine names the tunnel's inner identity in its Access-Accept / Access-Reject events
when the EAP server has one (the outer User-Name of PEAP/TTLS is usually anonymous)."""

from __future__ import annotations

import os

from radius import (
    AccessAccepted,
    AccessRejected,
    Code,
    Event,
    Packet,
    RadiusClient,
    RadiusServer,
    RequestContext,
    StringAttribute,
    TextAttribute,
    eap_message_attributes,
    encode_request,
    verify_response,
)
from radius.constants import AttributeType as T

SECRET = b"s3cret-shared"
NAS = ("192.0.2.10", 40000)


class OneRoundEap:
    """Identity Response in, one type-4 challenge, then Success for b"right" (else Failure);
    ``inner_identity`` as a tunnel method's EAP server would expose it (absent when None)."""

    def __init__(self, inner: bytes | None) -> None:
        if inner is not None:
            self.inner_identity = inner
        self.succeeded = False
        self.failed = False
        self.failure_reason: str | None = None
        self.msk: bytes | None = None

    def start(self) -> bytes:
        return bytes([1, 1, 0, 5, 1])

    def receive(self, packet: bytes) -> bytes | None:
        if packet[4] == 1:
            return bytes([1, 2, 0, 6, 4, 0])
        if packet[5:] == b"right":
            self.succeeded = True
            return bytes([3, 2, 0, 4])
        self.failed = True
        self.failure_reason = "wrong answer"
        return bytes([4, 2, 0, 4])


def _run(inner: bytes | None, answer: bytes) -> list[Event]:
    def factory(context: RequestContext) -> OneRoundEap:
        return OneRoundEap(inner)

    server = RadiusServer([RadiusClient.from_prefix("192.0.2.0/24", SECRET)], factory)
    state: bytes | None = None
    for identifier, eap in enumerate((bytes([2, 1, 0, 8, 1]) + b"bob", bytes([2, 2, 0, 5, 4]))):
        if identifier == 1:
            eap += answer
            eap = eap[:2] + len(eap).to_bytes(2, "big") + eap[4:]
        attributes: list[StringAttribute | TextAttribute] = [
            TextAttribute(T.USER_NAME, "anonymous@corp"),
            *eap_message_attributes(eap),
        ]
        if state is not None:
            attributes.append(StringAttribute(T.STATE, state))
        raw = encode_request(
            Packet(Code.ACCESS_REQUEST, identifier, os.urandom(16), tuple(attributes)), SECRET
        )
        out = server.receive_datagram(raw, NAS, 0.0)
        assert out is not None
        state = verify_response(out, raw[4:20], SECRET).string(T.STATE)
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    return events


def test_accept_names_the_inner_identity_and_keeps_the_outer_user_name() -> None:
    (accepted,) = _run(b"alice", b"right")
    assert isinstance(accepted, AccessAccepted)
    assert (accepted.user_name, accepted.inner_identity) == ("anonymous@corp", "alice")


def test_reject_names_the_inner_identity() -> None:
    (rejected,) = _run(b"alice", b"wrong")
    assert isinstance(rejected, AccessRejected)
    assert (rejected.user_name, rejected.inner_identity) == ("anonymous@corp", "alice")


def test_without_an_inner_identity_there_is_none() -> None:
    (accepted,) = _run(None, b"right")
    assert isinstance(accepted, AccessAccepted) and accepted.inner_identity is None
    (empty,) = _run(b"", b"right")
    assert isinstance(empty, AccessAccepted) and empty.inner_identity is None
