"""Thin Twisted adapter: UDP datagrams in and out of the sans-I/O :class:`radius.RadiusServer`.

One :class:`RadiusService` owns the engine, the clock and the engine's timer; one
:class:`RadiusDatagramProtocol` per listening port (auth 1812, accounting 1813) hands it
what arrives and writes back what the engine answers.  Nothing here parses RADIUS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.protocol import DatagramProtocol

from radius import Event, RadiusServer

if TYPE_CHECKING:
    from gateway.radius.accounting import AccountingRecorder
    from gateway.radius.dynauth import DynamicAuthorizer

__all__ = ["Clock", "RadiusDatagramProtocol", "RadiusService"]

log = logging.getLogger(__name__)


class _Timer(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of Twisted's ``IReactorTime`` the service uses (the reactor, or ``Clock``)."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], /) -> Any: ...


class RadiusService:
    def __init__(
        self,
        engine: RadiusServer,
        clock: Clock,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_event = on_event
        self._timer: _Timer | None = None
        self._deadline: float | None = None
        """The engine deadline ``_timer`` was armed for."""
        self.accounting: AccountingRecorder | None = None
        """Set by :func:`gateway.radius.listen` when given an accounting sink."""
        self.dynauth: DynamicAuthorizer | None = None
        """Set by :func:`gateway.radius.listen` with ``[dynauth]``: call its
        ``verdict_changed`` when a live endpoint's posture verdict changes."""
        self.dynauth_port: Any = None
        """The UDP port the CoA / Disconnect requests leave from (with ``dynauth``)."""

    def datagram(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        try:
            reply = self.engine.receive_datagram(data, source, self.clock.seconds())
        except Exception:  # an engine bug must cost one datagram, not the daemon
            log.exception("RADIUS engine failed on a datagram from %s:%d", *source)
            reply = None
        self._after()
        return reply

    def _after(self) -> None:
        while (event := self.engine.next_event()) is not None:
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("RADIUS event handler failed")
        deadline = self.engine.get_timer()
        timer = self._timer
        if timer is not None and timer.active():
            armed = self._deadline
            if deadline is not None and armed is not None and armed <= deadline:
                # Armed already for this deadline or an earlier one (the usual case per
                # datagram): keep it rather than cancel and schedule anew.  Firing before
                # the engine's deadline is harmless: handle_timer acts on what is due at
                # that moment and _fire re-arms for the rest.
                return
            timer.cancel()
        self._timer = None
        self._deadline = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.engine.handle_timer(self.clock.seconds())
        self._after()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class RadiusDatagramProtocol(DatagramProtocol):
    def __init__(self, service: RadiusService) -> None:
        self.service = service

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        reply = self.service.datagram(datagram, (addr[0], addr[1]))
        transport: Any = self.transport
        if reply is not None and transport is not None:
            transport.write(reply, addr)
