"""A sans-I/O client for Dynamic Authorization (RFC 5176): CoA-Request and Disconnect-Request.

The gateway sends these to a NAS (UDP port 3799 by default) to change or end a session, e.g.
when a posture re-assessment turns "allow" into "isolate".  :meth:`DynamicAuthorizationClient.send`
queues a request and returns its handle; :meth:`datagrams_to_send` hands out what to put on
the wire; :meth:`receive_datagram` matches answers by source, Identifier and Response
Authenticator; :meth:`handle_timer` retransmits with exponential back-off (RFC 5080 section
2.2.1: the same Identifier and authenticator on every retransmission) and finally reports
:class:`~radius.events.DynamicAuthorizationTimedOut`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from radius.attributes import Attribute
from radius.constants import AttributeType, Code
from radius.errors import LocalProtocolError, RemoteProtocolError
from radius.events import (
    Address,
    DynamicAuthorizationAcked,
    DynamicAuthorizationNaked,
    DynamicAuthorizationTimedOut,
    Event,
)
from radius.packet import Packet, encode_request, verify_response

__all__ = ["COA_PORT", "DynamicAuthorizationClient"]

log = logging.getLogger(__name__)

COA_PORT = 3799
"""RFC 5176 section 3."""

_ANSWERS = {
    Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
    Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
}


@dataclass(slots=True)
class _Pending:
    handle: int
    code: Code
    destination: Address
    identifier: int
    secret: bytes = field(repr=False)
    datagram: bytes
    next_send: float
    interval: float
    sends: int = 0


class DynamicAuthorizationClient:
    def __init__(
        self,
        *,
        initial_timeout: float = 2.0,
        max_timeout: float = 16.0,
        max_transmissions: int = 5,
    ) -> None:
        self._initial = initial_timeout
        self._max_timeout = max_timeout
        self._max_transmissions = max_transmissions
        self._pending: dict[tuple[Address, int], _Pending] = {}
        self._next_identifier: dict[Address, int] = {}
        self._next_handle = 1
        self._events: deque[Event] = deque()

    def send(
        self,
        code: Code,
        attributes: Iterable[Attribute],
        destination: Address,
        secret: bytes,
        now: float,
    ) -> int:
        """Queue a CoA-Request or Disconnect-Request; return the handle events refer to."""
        if code not in _ANSWERS:
            raise LocalProtocolError(f"{code.name} is not a CoA or Disconnect request")
        identifier = self._allocate_identifier(destination)
        handle = self._next_handle
        self._next_handle += 1
        datagram = encode_request(Packet(code, identifier, attributes=tuple(attributes)), secret)
        self._pending[(destination, identifier)] = _Pending(
            handle, code, destination, identifier, secret, datagram, now, self._initial
        )
        return handle

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out: list[tuple[bytes, Address]] = []
        for pending in self._pending.values():
            if pending.sends == 0 or (
                pending.next_send <= now and pending.sends < self._max_transmissions
            ):
                if pending.sends:
                    pending.interval = min(pending.interval * 2, self._max_timeout)
                pending.sends += 1
                pending.next_send = now + pending.interval
                out.append((pending.datagram, pending.destination))
        return out

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        if len(data) < 20:
            log.warning("short datagram from %s dropped", source)
            return
        pending = self._pending.get((source, data[1]))
        if pending is None:
            log.warning("unexpected RADIUS answer from %s:%d (id %d)", *source, data[1])
            return
        try:
            packet = verify_response(data, pending.datagram[4:20], pending.secret)
        except RemoteProtocolError as exc:
            log.warning("answer from %s:%d dropped: %s", *source, exc)
            return
        ack, nak = _ANSWERS[pending.code]
        if packet.code == ack:
            event: Event = DynamicAuthorizationAcked(pending.handle, packet.code, packet.attributes)
        elif packet.code == nak:
            event = DynamicAuthorizationNaked(
                pending.handle,
                packet.code,
                packet.integer(AttributeType.ERROR_CAUSE),
                packet.attributes,
            )
        else:
            log.warning(
                "%s from %s:%d does not answer a %s", packet.code.name, *source, pending.code.name
            )
            return
        del self._pending[(source, pending.identifier)]
        self._events.append(event)

    def get_timer(self) -> float | None:
        return min((p.next_send for p in self._pending.values()), default=None)

    def handle_timer(self, now: float) -> None:
        """Give up on requests sent ``max_transmissions`` times whose last wait is over.

        Retransmissions themselves come out of :meth:`datagrams_to_send`."""
        for key, pending in list(self._pending.items()):
            if pending.sends >= self._max_transmissions and pending.next_send <= now:
                del self._pending[key]
                self._events.append(DynamicAuthorizationTimedOut(pending.handle))

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _allocate_identifier(self, destination: Address) -> int:
        start = self._next_identifier.get(destination, 0)
        for offset in range(256):
            identifier = (start + offset) % 256
            if (destination, identifier) not in self._pending:
                self._next_identifier[destination] = (identifier + 1) % 256
                return identifier
        raise LocalProtocolError(f"256 requests outstanding to {destination}")
