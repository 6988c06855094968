"""The Twisted adapter with a fake clock and a recording transport (no sockets)."""

from __future__ import annotations

import os

from twisted.internet.task import Clock

from gateway.radius import RadiusDatagramProtocol, RadiusService
from radius import (
    AccessRejected,
    AttributeType,
    Code,
    Event,
    Packet,
    PacketDropped,
    RadiusClient,
    RadiusServer,
    eap_message_attributes,
    encode_request,
    verify_response,
)

SECRET = b"adapter-secret"
NAS = ("192.0.2.5", 50000)


class Transport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


class OneRoundEap:
    """Identity Response in -> one Request out; a second Response fails it."""

    def __init__(self) -> None:
        self.succeeded = False
        self.failed = False
        self.msk: bytes | None = None
        self.failure_reason: str | None = None

    def start(self) -> bytes:
        return bytes([1, 1, 0, 5, 1])

    def receive(self, packet: bytes) -> bytes | None:
        if packet[4] == 1:
            return bytes([1, packet[1] + 1, 0, 6, 4, 0])
        self.failed = True
        self.failure_reason = "nope"
        return bytes([4, packet[1], 0, 4])


def _setup(events: list[Event]) -> tuple[RadiusDatagramProtocol, Transport, Clock, RadiusServer]:
    clock = Clock()
    clock.advance(1000)
    engine = RadiusServer(
        [RadiusClient.from_prefix("192.0.2.0/24", SECRET)],
        lambda context: OneRoundEap(),
        conversation_timeout=30.0,
    )
    protocol = RadiusDatagramProtocol(RadiusService(engine, clock, events.append))
    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    return protocol, transport, clock, engine


def _request(state: bytes | None = None, eap: bytes = bytes([2, 3, 0, 6, 1, 0x62])) -> bytes:
    attributes = list(eap_message_attributes(eap))
    if state is not None:
        from radius import StringAttribute

        attributes.append(StringAttribute(AttributeType.STATE, state))
    return encode_request(Packet(Code.ACCESS_REQUEST, 1, os.urandom(16), tuple(attributes)), SECRET)


def test_datagram_answered_to_its_source_and_timer_expires_conversation() -> None:
    events: list[Event] = []
    protocol, transport, clock, engine = _setup(events)
    request = _request()
    protocol.datagramReceived(request, NAS)
    ((reply, addr),) = transport.written
    assert addr == NAS
    challenge = verify_response(reply, request[4:20], SECRET)
    assert challenge.code == Code.ACCESS_CHALLENGE
    assert engine.conversations == 1
    assert clock.getDelayedCalls(), "the adapter arms the engine's timer"
    clock.advance(31)
    assert engine.conversations == 0
    state = challenge.string(AttributeType.STATE)
    late = _request(state, bytes([2, 4, 0, 6, 4, 0]))
    protocol.datagramReceived(late, NAS)
    assert verify_response(transport.written[-1][0], late[4:20], SECRET).code == Code.ACCESS_REJECT
    assert any(isinstance(e, AccessRejected) for e in events)


def test_dropped_datagram_writes_nothing_and_reports() -> None:
    events: list[Event] = []
    protocol, transport, _clock, _engine = _setup(events)
    protocol.datagramReceived(b"\x01\x00\x00\x14" + bytes(16), ("198.51.100.7", 1))
    protocol.datagramReceived(b"junk", NAS)
    assert transport.written == []
    assert [type(e) for e in events] == [PacketDropped, PacketDropped]


def test_engine_exception_costs_one_datagram_only() -> None:
    events: list[Event] = []
    protocol, transport, _clock, engine = _setup(events)

    def boom(*args: object) -> bytes:
        raise RuntimeError("bug")

    original = engine.receive_datagram
    engine.receive_datagram = boom  # type: ignore[method-assign,assignment]
    protocol.datagramReceived(_request(), NAS)
    assert transport.written == []
    engine.receive_datagram = original  # type: ignore[method-assign]
    protocol.datagramReceived(_request(), NAS)
    assert len(transport.written) == 1


def test_event_handler_exception_is_contained() -> None:
    clock = Clock()
    engine = RadiusServer(
        [RadiusClient.from_prefix("192.0.2.0/24", SECRET)], lambda c: OneRoundEap()
    )

    def bad_handler(event: Event) -> None:
        raise ValueError("handler bug")

    service = RadiusService(engine, clock, bad_handler)
    assert service.datagram(b"junk", NAS) is None
