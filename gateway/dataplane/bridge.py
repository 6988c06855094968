"""The daemon's view of the dataplane: IKE engine events in, dataplane operations out.

:class:`DaemonDataplane` wraps a :class:`~gateway.dataplane.base.Dataplane` backend with the
synchronous hooks ``gateway.daemon.service.Gateway`` calls (``install(event)``,
``delete(event)``, ``esp_received(...) -> bool``, ``close()``, ``name``) and adds what the
daemon needs beyond them:

* ``set_sender(fn)`` - how ESP leaves: ``fn(data, remote)`` writes a datagram from the IKE
  socket on port 4500 (userspace backend only; no non-ESP marker);
* ``move_endpoint(ike_sa, local_ts, remote_ts)`` - quarantine -> allow: replace the selectors
  (policies) of every CHILD_SA of an IKE_SA without new keys;
* ``rename_ike_sa(old, new)`` after an IKE_SA rekey;
* ``add_virtual_ip(cidr)`` / ``remove_virtual_ip`` - an initiator's virtual IP on the TUN;
* ``on_event`` - :class:`~gateway.dataplane.esp.SaSoftExpired` (rekey the CHILD_SA:
  ``engine.rekey_child_sa(ike_sa, spi_in, now)``), :class:`~gateway.dataplane.esp.SaHardExpired`
  (``engine.delete_child_sa``), :class:`~gateway.dataplane.base.Acquire`; ``ike_sa`` in them is
  always the current one;
* ``stats()`` -> Deferred[dict] with ``backend`` and ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from gateway.dataplane.base import Acquire, Dataplane, DataplaneEvent, spec_from_event
from gateway.dataplane.esp import Lifetimes, SaHardExpired, SaSoftExpired
from ike.payloads import TrafficSelector
from ike.sa import Address, ChildSaDeleted, ChildSaInstalled

__all__ = ["DaemonDataplane"]

log = logging.getLogger("gateway.dataplane")


class DaemonDataplane:
    def __init__(
        self,
        backend: Dataplane,
        *,
        lifetimes: Callable[[ChildSaInstalled], Lifetimes | None] | None = None,
        replay_window: int = 128,
    ) -> None:
        self.backend = backend
        self.lifetimes = lifetimes
        self.replay_window = replay_window
        self.on_event: Callable[[DataplaneEvent], None] = lambda event: None
        self.errors = 0
        self.no_sender = 0
        self._sender: Callable[[bytes, Address], None] | None = None
        self._ike_of: dict[int, bytes] = {}
        self._takes_esp = backend.backend == "userspace"
        backend.on_event = self._backend_event

    @property
    def name(self) -> str:
        return self.backend.backend

    @property
    def reason(self) -> str:
        return self.backend.reason

    # -- hooks the daemon calls -------------------------------------------------------------

    def set_sender(self, sender: Callable[[bytes, Address], None]) -> None:
        self._sender = sender
        backend: Any = self.backend
        if backend.backend == "userspace" and hasattr(backend, "send_esp"):
            # Per packet, the backend calls the sender itself rather than through
            # send_esp below (and the closure that hands it to the backend).
            backend.send_esp = sender

    def set_segment_sender(self, sender: Callable[[list[bytes], Address], None] | None) -> None:
        """Several same-length ESP packets to one peer in one system call
        (:func:`gateway.dataplane.userspace.segment_sender`); userspace backend only."""
        backend: Any = self.backend
        if backend.backend == "userspace" and hasattr(backend, "send_esp_segments"):
            backend.send_esp_segments = sender

    def send_esp(self, data: bytes, remote: Address) -> None:
        """Handed to the userspace backend as its ``send_esp``."""
        if self._sender is None:
            self.no_sender += 1
            return
        self._sender(data, remote)

    def install(
        self,
        event: ChildSaInstalled,
        local_ts: tuple[TrafficSelector, ...] | None = None,
        remote_ts: tuple[TrafficSelector, ...] | None = None,
    ) -> defer.Deferred[None]:
        spec = spec_from_event(
            event,
            lifetimes=self.lifetimes(event) if self.lifetimes else None,
            replay_window=self.replay_window,
            local_ts=local_ts,
            remote_ts=remote_ts,
        )
        self._ike_of[event.spi_in] = event.ike_sa
        return self._track(self.backend.install_child_sa(spec), f"install {spec!r}")

    def delete(self, event: ChildSaDeleted) -> defer.Deferred[None]:
        self._ike_of.pop(event.spi_in, None)
        return self._track(self.backend.delete_child_sa(event.spi_in), f"delete {event!r}")

    def esp_received(self, data: bytes, remote: Address, local: Address) -> bool:
        self.backend.esp_received(data, remote, local)
        return self._takes_esp

    def close(self) -> defer.Deferred[None]:
        return self._track(self.backend.stop(), "stop")

    def move_endpoint(
        self,
        ike_sa: bytes,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> defer.Deferred[Any]:
        """Replace the selectors of every CHILD_SA of ``ike_sa`` (isolate -> allow)."""
        spis = [spi for spi, ike in self._ike_of.items() if ike == ike_sa]
        ds = [self.backend.update_selectors(spi, local_ts, remote_ts) for spi in spis]
        gathered = defer.gatherResults(ds, consumeErrors=True)
        return self._track(gathered, f"move {ike_sa.hex()}", swallow=False)

    def add_virtual_ip(self, cidr: str) -> defer.Deferred[None]:
        """An initiator's virtual IP onto the TUN device (userspace backend; the XFRM backend
        leaves addresses to the system)."""
        add = getattr(self.backend, "add_address", None)
        if add is None:
            return defer.succeed(None)
        return self._track(add(cidr), f"add address {cidr}")

    def remove_virtual_ip(self, cidr: str) -> defer.Deferred[None]:
        remove = getattr(self.backend, "remove_address", None)
        if remove is None:
            return defer.succeed(None)
        return self._track(remove(cidr), f"remove address {cidr}")

    def rename_ike_sa(self, old: bytes, new: bytes) -> None:
        for spi, ike in self._ike_of.items():
            if ike == old:
                self._ike_of[spi] = new

    def child_sas(self, ike_sa: bytes) -> list[int]:
        return [spi for spi, ike in self._ike_of.items() if ike == ike_sa]

    @defer.inlineCallbacks
    def stats(self) -> Any:
        out = yield self.backend.stats()
        out = dict(out)
        out["bridge_errors"] = self.errors
        out["no_sender"] = self.no_sender
        return out

    # -- internals --------------------------------------------------------------------------

    def _track(
        self, d: defer.Deferred[Any], what: str, swallow: bool = True
    ) -> defer.Deferred[Any]:
        """Log and count a failure; the daemon's hooks ignore results, so by default the
        failure ends here (``swallow``) instead of surfacing as an unhandled Deferred."""

        def failed(f: Failure) -> Failure | None:
            self.errors += 1
            log.error("dataplane %s: %s failed: %s", self.name, what, f.getErrorMessage())
            return None if swallow else f

        d.addErrback(failed)
        return d

    def _backend_event(self, event: DataplaneEvent) -> None:
        if isinstance(event, (SaSoftExpired, SaHardExpired)):
            ike = self._ike_of.get(event.spi_in, event.ike_sa)
            if isinstance(event, SaHardExpired):
                self._ike_of.pop(event.spi_in, None)
            event = replace(event, ike_sa=ike)
        elif not isinstance(event, Acquire):
            return
        self.on_event(event)
