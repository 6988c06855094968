"""The dataplane interface the gateway daemon talks to, whatever the backend.

Two backends implement :class:`Dataplane`: :class:`gateway.dataplane.userspace.UserspaceDataplane`
(ESP in Python on a TUN device, for kernels without ESP such as the CI machine) and
:class:`gateway.dataplane.xfrm.XfrmDataplane` (the kernel's XFRM through netlink).
:class:`NullDataplane` (``dataplane = "none"``) installs nothing, for posture-only gateways.
:func:`gateway.dataplane.select.create_dataplane` picks one at start-up.

Every operation that may touch the kernel returns a Deferred: netlink runs on one worker
thread (:class:`NetlinkWorker`) so it never blocks the reactor.  Events for the IKE engine
(:class:`~gateway.dataplane.esp.SaSoftExpired` -> rekey the CHILD_SA,
:class:`~gateway.dataplane.esp.SaHardExpired` -> delete it, :class:`Acquire` -> a packet
wants an SA) go to the ``on_event`` callable the daemon sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from gateway.dataplane.esp import (
    DEFAULT_REPLAY_WINDOW,
    EspTransform,
    Lifetimes,
    SaHardExpired,
    SaSoftExpired,
    SaSpec,
)
from ike.payloads import TrafficSelector
from ike.sa import Address, ChildSaInstalled

__all__ = [
    "Acquire",
    "Dataplane",
    "DataplaneError",
    "DataplaneEvent",
    "DataplaneUnavailable",
    "NetlinkWorker",
    "NullDataplane",
    "spec_from_event",
]

T = TypeVar("T")


class DataplaneError(Exception):
    """Root of the dataplane adapters' errors.  ``errno`` is the kernel's error when netlink
    refused a request."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class DataplaneUnavailable(DataplaneError):
    """The configured backend cannot work here (the message says what is missing)."""


@dataclass(frozen=True, slots=True)
class Acquire:
    """XFRM_MSG_ACQUIRE: the kernel has a packet for a policy without an SA (trap policy)."""

    src: str
    dst: str
    local_ts: TrafficSelector
    remote_ts: TrafficSelector
    policy_index: int


DataplaneEvent = SaSoftExpired | SaHardExpired | Acquire


class Dataplane(Protocol):
    """What the daemon calls.  ``spi_in`` names a CHILD_SA, as in the IKE engine."""

    backend: str
    """"userspace", "xfrm" or "none"."""
    reason: str
    """Why this backend was chosen (shown in ``stats``)."""
    on_event: Callable[[DataplaneEvent], None]

    def start(self) -> defer.Deferred[None]: ...

    def stop(self) -> defer.Deferred[None]: ...

    def allocate_spi(self, remote: str, local: str) -> defer.Deferred[int]:
        """A fresh inbound SPI (the kernel's ALLOCSPI for XFRM)."""
        ...

    def install_child_sa(self, spec: SaSpec) -> defer.Deferred[None]:
        """Install both directions and the policies (or routes) of a CHILD_SA."""
        ...

    def delete_child_sa(self, spi_in: int) -> defer.Deferred[None]: ...

    def update_selectors(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> defer.Deferred[None]:
        """Replace the traffic selectors (policies) of an installed CHILD_SA, keys unchanged:
        quarantine -> allow without a new IKE_SA."""
        ...

    def child_sas(self, ike_sa: bytes) -> list[int]:
        """Inbound SPIs of the CHILD_SAs installed for an IKE_SA."""
        ...

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        """A UDP-encapsulated ESP packet from the IKE socket on 4500 (non-ESP marker absent).
        The XFRM backend never sees these: the kernel takes them off the socket."""
        ...

    def stats(self) -> defer.Deferred[dict[str, Any]]:
        """Counters as a JSON-able dict with at least ``backend`` and ``reason``."""
        ...


def spec_from_event(
    event: ChildSaInstalled,
    *,
    lifetimes: Lifetimes | None = None,
    replay_window: int = DEFAULT_REPLAY_WINDOW,
    mark: tuple[int, int] | None = None,
    local_ts: tuple[TrafficSelector, ...] | None = None,
    remote_ts: tuple[TrafficSelector, ...] | None = None,
) -> SaSpec:
    """The dataplane's view of the IKE engine's ``ChildSaInstalled`` event.

    ``local_ts`` / ``remote_ts`` override the negotiated selectors (the daemon narrows them to
    the isolate children for a quarantined endpoint)."""
    return SaSpec(
        ike_sa=event.ike_sa,
        name=event.name,
        spi_in=event.spi_in,
        spi_out=event.spi_out,
        transform=EspTransform(event.encr_id, event.encr_key_bits, event.integ_id),
        encr_key_in=event.encr_key_in,
        integ_key_in=event.integ_key_in,
        encr_key_out=event.encr_key_out,
        integ_key_out=event.integ_key_out,
        local_ts=local_ts if local_ts is not None else event.local_ts,
        remote_ts=remote_ts if remote_ts is not None else event.remote_ts,
        local=event.local,
        remote=event.remote,
        udp_encap=event.udp_encap,
        esn=event.esn,
        replay_window=replay_window,
        lifetimes=lifetimes or Lifetimes(),
        replaces=event.replaces,
        mark=mark,
    )


class NetlinkWorker:
    """One thread that owns the netlink sockets; ``call`` runs a function there and returns a
    Deferred.  ``reactor=None`` runs calls inline (tests, the standalone tools)."""

    def __init__(self, reactor: Any | None, name: str = "nea-netlink") -> None:
        self.reactor = reactor
        self._pool: ThreadPool | None = None
        if reactor is not None:
            self._pool = ThreadPool(1, 1, name=name)
            self._pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def call(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        if self._pool is None:
            try:
                return defer.succeed(fn(*args))
            except Exception:
                return defer.fail()
        reactor: Any = self.reactor
        result: defer.Deferred[T] = threads.deferToThreadPool(reactor, self._pool, fn, *args)
        return result

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None


class NullDataplane:
    """``dataplane = "none"``: the gateway negotiates CHILD_SAs but installs nothing (useful for
    posture assessment only, or when another component owns the dataplane)."""

    backend = "none"

    def __init__(self, reason: str = "configured: none") -> None:
        self.reason = reason
        self.on_event: Callable[[DataplaneEvent], None] = lambda event: None
        self._sas: dict[int, SaSpec] = {}
        self._next_spi = 0xC0000000

    def start(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def stop(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def allocate_spi(self, remote: str, local: str) -> defer.Deferred[int]:
        self._next_spi += 1
        return defer.succeed(self._next_spi)

    def install_child_sa(self, spec: SaSpec) -> defer.Deferred[None]:
        spec.validate()
        self._sas[spec.spi_in] = spec
        return defer.succeed(None)

    def delete_child_sa(self, spi_in: int) -> defer.Deferred[None]:
        self._sas.pop(spi_in, None)
        return defer.succeed(None)

    def update_selectors(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> defer.Deferred[None]:
        spec = self._sas.get(spi_in)
        if spec is None:
            return defer.fail(DataplaneError(f"no CHILD_SA {spi_in:08x}"))
        from dataclasses import replace

        self._sas[spi_in] = replace(spec, local_ts=local_ts, remote_ts=remote_ts)
        return defer.succeed(None)

    def child_sas(self, ike_sa: bytes) -> list[int]:
        return [spi for spi, s in self._sas.items() if s.ike_sa == ike_sa]

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        return None

    def stats(self) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed(
            {"backend": self.backend, "reason": self.reason, "child_sas": len(self._sas)}
        )
