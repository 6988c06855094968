"""The running gateway: IKE over :class:`gateway.ike_udp.IkeUdpService`, the SA registry,
counters, the dataplane hand-off, reload and an orderly shutdown.

:class:`Gateway` is reactor-agnostic enough for tests: give it a ``twisted.internet.testing``
``Clock`` and fake ports, or the real reactor (``start()`` listens).  Control commands
(:meth:`Gateway.command`) return plain JSON-able data or a Deferred of it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer

from gateway.daemon.compose import AccessRouter, Composition, PostureSession, compose
from gateway.daemon.config import ConfigError, GatewayConfig, load_config
from gateway.ike_udp import NATT_PORT, IkePort, IkeUdpService
from ike.constants import NON_ESP_MARKER, EncrId, IntegId
from ike.errors import IkeError
from ike.message import decode_message
from ike.sa import (
    Address,
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    Event,
    IkeEngine,
    IkeSaClosed,
    IkeSaEstablished,
    IkeSaRekeyed,
    ReauthRequested,
    SaState,
)

__all__ = [
    "ChildRecord",
    "Dataplane",
    "Gateway",
    "GatewayUdpService",
    "LoggingDataplane",
    "SaRecord",
    "Stats",
]

log = logging.getLogger("gateway.daemon")
chd_log = logging.getLogger("gateway.daemon.chd")
knl_log = logging.getLogger("gateway.daemon.knl")
net_log = logging.getLogger("gateway.daemon.net")

_HEADER_LEN = 28
NAT_KEEPALIVE = b"\xff"
"""RFC 3948, 2.3: the one-octet NAT keepalive (sent and received without the marker)."""
_FLAG_INITIATOR = 0x08
REAUTH_GRACE = 60.0
"""Default of ``[ike] reauth_grace``: seconds an IKE_SA asked to re-authenticate
(AUTH_LIFETIME 0) may live on before the gateway deletes it itself."""


# --------------------------------------------------------------------------------------------
# Records and counters


def _alg_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum(value).name).removeprefix(prefix)
    except ValueError:
        return str(value)


@dataclass
class ChildRecord:
    name: str
    spi_in: int
    spi_out: int
    encr: str
    integ: str
    local_ts: list[str]
    remote_ts: list[str]
    udp_encap: bool
    installed: float

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "INSTALLED",
            "spi_in": f"{self.spi_in:08x}",
            "spi_out": f"{self.spi_out:08x}",
            "encr": self.encr,
            "integ": self.integ,
            "local_ts": self.local_ts,
            "remote_ts": self.remote_ts,
            "encap": self.udp_encap,
            "installed": round(now - self.installed),
        }


@dataclass
class SaRecord:
    unique_id: int
    ike_sa: bytes
    connection: str
    state: str
    initiator: bool
    local: Address
    remote: Address
    local_id: str = ""
    remote_id: str = ""
    eap_identity: str | None = None
    vips: list[str] = field(default_factory=list)
    suite: str = ""
    spi_i: bytes = b""
    spi_r: bytes = b""
    nat: bool = False
    verdict: str | None = None
    reassess_asked: float | None = None
    pt_tls: int | None = None
    """The posture connection id of the PT-TLS session tied to this IKE_SA (its virtual IP)."""
    established: float = 0.0
    children: dict[int, ChildRecord] = field(default_factory=dict)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.connection,
            "uniqueid": self.unique_id,
            "ike_sa": self.ike_sa.hex(),
            "state": self.state,
            "initiator": self.initiator,
            "spi_i": self.spi_i.hex(),
            "spi_r": self.spi_r.hex(),
            "local_host": self.local[0],
            "local_port": self.local[1],
            "remote_host": self.remote[0],
            "remote_port": self.remote[1],
            "local_id": self.local_id,
            "remote_id": self.remote_id,
            "remote_eap_id": self.eap_identity,
            "remote_vips": self.vips,
            "suite": self.suite,
            "nat": self.nat,
            "verdict": self.verdict,
            "reassessing": self.reassess_asked is not None,
            "pt_tls": self.pt_tls,
            "established": round(now - self.established) if self.established else None,
            "children": [c.to_json(now) for c in self.children.values()],
        }


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    ike_received: int = 0
    ike_sent: int = 0
    invalid: int = 0
    errors: int = 0
    esp_received: int = 0
    esp_dropped: int = 0
    keepalives: int = 0
    established_total: int = 0
    closed_total: int = 0
    auth_failed: int = 0
    children_installed: int = 0
    children_failed: int = 0
    posture_assessments: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {"allow": 0, "isolate": 0, "none": 0})
    reloads: int = 0
    reassessments: int = 0
    pt_tls_assessments: int = 0
    moves: int = 0
    """IKE_SAs moved between allow and isolate children without a new IKE_SA."""


# --------------------------------------------------------------------------------------------
# Dataplane


class Dataplane:
    """What the daemon hands CHILD_SAs to; this base (``dataplane = "none"``) only logs."""

    name = "none"

    def install(self, event: ChildSaInstalled) -> None:
        knl_log.info("dataplane none: not installing CHILD_SA %r", event)

    def delete(self, event: ChildSaDeleted) -> None:
        knl_log.info(
            "dataplane none: CHILD_SA in=%08x out=%08x deleted", event.spi_in, event.spi_out
        )

    def esp_received(self, data: bytes, remote: Address, local: Address) -> bool:
        """UDP-encapsulated ESP from port 4500; False when nobody takes it."""
        return False

    def close(self) -> None:
        return None


LoggingDataplane = Dataplane


def make_dataplane(kind: str, source: str, reactor: Any = None) -> Dataplane:
    """``auto``: the kernel (XFRM) or userspace dataplane when ``gateway.dataplane`` is
    installed and we are root, else ``none``.  An explicit backend that cannot be had is a
    configuration error."""
    if kind == "none":
        return Dataplane()
    try:
        import importlib

        module: Any = importlib.import_module("gateway.dataplane")
    except ImportError:
        module = None
    factory = getattr(module, "create_dataplane", None) if module is not None else None
    if factory is None:
        if kind == "auto":
            log.info("dataplane auto: gateway.dataplane not available, using none")
            return Dataplane()
        raise ConfigError(source, "dataplane", f"{kind!r} is not available in this installation")
    if kind == "auto" and os.geteuid() != 0:
        log.info("dataplane auto: not root, using none")
        return Dataplane()
    try:
        dp: Dataplane = factory(kind, reactor)
    except Exception as exc:
        if kind == "auto":
            log.warning("dataplane auto: %s; using none", exc)
            return Dataplane()
        raise ConfigError(source, "dataplane", f"{kind}: {exc}") from None
    return dp


# --------------------------------------------------------------------------------------------
# UDP


class GatewayPort(IkePort):
    """An :class:`IkePort` whose NAT-T port (non-ESP marker) is configurable."""

    def __init__(self, service: GatewayUdpService, host: str, port: int, natt: bool) -> None:
        super().__init__(service, host, port)
        self.natt = natt
        self.gateway_service = service

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        svc = self.gateway_service
        if self.natt:
            if data == NAT_KEEPALIVE:
                svc.counters.keepalives += 1
                return
            if not data.startswith(NON_ESP_MARKER):
                # ESP, per packet: Twisted's (host, port) as it is (str, int already).
                svc.esp_received(data, addr, (self.host, self.port))
                return
            data = data[4:]
        svc.ike_received(data, (str(addr[0]), int(addr[1])), (self.host, self.port))

    def send(self, data: bytes, remote: Address) -> None:
        if self.transport is None:
            return
        if self.natt and data != NAT_KEEPALIVE:
            data = NON_ESP_MARKER + data
        transport: Any = self.transport
        transport.write(data, remote)


class GatewayUdpService(IkeUdpService):
    """:class:`IkeUdpService` with configurable ports, counters, crash protection and the
    IKE_SA focus the :class:`AccessRouter` needs."""

    def __init__(
        self,
        engine: IkeEngine,
        clock: Any,
        host: str,
        on_event: Callable[[Event], None],
        esp_handler: Callable[[bytes, Address, Address], None] | None,
        ports: tuple[int, int],
        router: AccessRouter,
        stats: Stats,
    ) -> None:
        super().__init__(engine, clock, host, on_event, esp_handler, ports)
        self.ike_port, self.natt_port = ports
        self.ports = {p: GatewayPort(self, host, p, p == self.natt_port) for p in ports}
        self.router = router
        self.counters = stats

    def ike_received(self, data: bytes, remote: Address, local: Address) -> None:
        self.counters.ike_received += 1
        if not isinstance(getattr(self.engine, "stats", None), dict):
            try:  # an engine without its own counters: count what does not parse here
                decode_message(data)
            except Exception:
                self.counters.invalid += 1
        focus = None
        if len(data) >= _HEADER_LEN:
            focus = data[8:16] if data[19] & _FLAG_INITIATOR else data[0:8]
        self.router.focus(focus)
        try:
            self.engine.receive_datagram(data, remote, self.now(), local=local)
        except Exception:
            self.counters.errors += 1
            log.exception("engine failed on a datagram from %s:%d", *remote)
        finally:
            self.router.focus(None)
        self.flush()

    def initiate(self, name: str, remote: Address) -> bytes:
        spi = self.engine.initiate(
            name, self.now(), local=(self.host, self.ike_port), remote=remote
        )
        self.flush()
        return spi

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        self.counters.esp_received += 1
        if self.esp_handler is not None:
            self.esp_handler(data, remote, local)

    def flush(self) -> None:
        for d in self.engine.datagrams_to_send(self.now()):
            lport = d.local[1]
            if lport == NATT_PORT and lport not in self.ports:
                lport = self.natt_port  # the engine floats to 4500 by the RFC's number
            port = self.ports.get(lport) or self.ports[self.ike_port]
            self.counters.ike_sent += 1
            port.send(d.data, d.remote)
        while (event := self.engine.next_event()) is not None:
            try:
                self.on_event(event)
            except Exception:
                self.counters.errors += 1
                log.exception("event consumer failed on %r", type(event).__name__)
        self.timer.arm()

    def _fire(self) -> None:
        try:
            self.engine.handle_timer(self.now())
        except Exception:
            self.counters.errors += 1
            log.exception("engine failed in a timer")
        self.flush()


# --------------------------------------------------------------------------------------------
# The gateway


@dataclass
class _Move:
    """An IKE_SA moving to the children of ``verdict``: CREATE_CHILD_SA for each of
    ``create`` (one at a time), then Delete for the CHILD_SAs in ``delete``."""

    verdict: str
    create: list[Any]
    delete: list[int]
    previous: tuple[Any, ...]
    waiting: str | None = None
    grace_over: bool = False


class Gateway:
    """One running gateway.  ``config_path`` None runs the embedded defaults."""

    def __init__(
        self,
        config: GatewayConfig,
        reactor: Any,
        *,
        config_path: Path | None = None,
        composition: Composition | None = None,
        dataplane: Dataplane | None = None,
        evidence_sink: Any = None,
        pool_runner: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.config_path = config_path
        self.stats = Stats()
        self.evidence_sink = evidence_sink
        self.composition = composition or compose(
            config, evidence_sink=evidence_sink, posture_counter=self._posture_started
        )
        self.router = self.composition.router
        self.dataplane = (
            dataplane if dataplane is not None else make_dataplane(config.dataplane, config.source)
        )
        self.engine = IkeEngine(self.composition.engine_config)
        self.udp = GatewayUdpService(
            self.engine,
            reactor,
            config.ike.listen,
            self._on_event,
            self._esp,
            (config.ike.port, config.ike.port_nat_t),
            self.router,
            self.stats,
        )
        self._hook_dataplane()
        self._pool_runner = pool_runner
        self._hook_sql_pools()
        self.sas: dict[bytes, SaRecord] = {}
        self._early_children: dict[bytes, dict[int, ChildRecord]] = {}
        self._initiating: dict[bytes, str] = {}
        self._moves: dict[bytes, _Move] = {}
        """IKE_SAs being moved between their allow and isolate children."""
        self._replacing: dict[bytes, bytes] = {}
        """New IKE_SA -> the one it re-authenticates (deleted once the new one is up)."""
        self._ids = 0
        self._waiters: dict[bytes, list[defer.Deferred[dict[str, Any]]]] = {}
        self._closed_waiters: dict[bytes, list[defer.Deferred[None]]] = {}
        self.listening: list[Any] = []
        self.radius: Any = None
        self.pt_tls: Any = None
        """The ``[pt_tls]`` listener (:class:`gateway.daemon.pt_tls.DaemonPtTls`)."""
        self.stopping = False

    def _hook_dataplane(self) -> None:
        """A real dataplane (``gateway.dataplane.bridge.DaemonDataplane``) sends ESP from our
        NAT-T socket and tells us when CHILD_SA lifetimes run out."""
        dp: Any = self.dataplane
        if hasattr(dp, "set_sender"):
            natt = self.udp.ports[self.config.ike.port_nat_t]

            def send(data: bytes, remote: Address) -> None:
                transport: Any = natt.transport
                if transport is not None:
                    transport.write(data, remote)

            dp.set_sender(send)
        if hasattr(dp, "on_event"):
            dp.on_event = self._dataplane_event

    def _prepare_sockets(self) -> None:
        """The dataplane's needs of our listening sockets: with XFRM, IKE bypasses the IPsec
        policies and the kernel takes ESP-in-UDP off the NAT-T socket
        (:func:`gateway.dataplane.xfrm.prepare_ike_socket`); with the userspace backend, ESP
        goes straight out of the NAT-T socket (:func:`gateway.dataplane.userspace.socket_sender`,
        several packets a system call with :func:`~gateway.dataplane.userspace.segment_sender`
        and :func:`~gateway.dataplane.userspace.receive_segments`), which gets a receive buffer
        for ESP bursts
        (:func:`gateway.dataplane.userspace.size_esp_socket`).
        """
        kind = self.dataplane.name
        natt = self.config.ike.port_nat_t
        for port, proto in self.udp.ports.items():
            sock = getattr(proto.transport, "socket", None)
            if sock is None:
                continue
            if kind == "xfrm":
                from gateway.dataplane.xfrm import prepare_ike_socket

                try:
                    prepare_ike_socket(sock, encap=port == natt)
                except OSError as exc:
                    raise ConfigError(
                        self.config.source, "dataplane", f"xfrm: IKE socket {port}: {exc}"
                    ) from None
                knl_log.info("IKE socket %d: XFRM bypass%s", port, ", ESP-in-UDP" * (port == natt))
            elif kind == "userspace" and port == natt and hasattr(self.dataplane, "set_sender"):
                from gateway.dataplane.userspace import (
                    receive_segments,
                    segment_sender,
                    size_esp_socket,
                    socket_sender,
                )

                self.dataplane.set_sender(socket_sender(proto.transport))
                if hasattr(self.dataplane, "set_segment_sender"):
                    self.dataplane.set_segment_sender(segment_sender(sock))
                receive_segments(proto.transport, proto)
                granted = size_esp_socket(sock)
                knl_log.info("IKE socket %d: ESP receive buffer %d octets", port, granted)

    def _hook_sql_pools(self) -> None:
        """SQL pools query in the reactor's thread pool; their answers resume IKE_AUTH."""
        backend = self.composition.sql_pools
        if backend is None:
            return
        runner = self._pool_runner
        if runner is None and hasattr(self.reactor, "getThreadPool"):
            from twisted.internet.threads import deferToThreadPool

            reactor = self.reactor

            def runner(fn: Callable[[], Any]) -> Any:
                return deferToThreadPool(reactor, reactor.getThreadPool(), fn)

        if runner is not None:
            backend.runner = runner
        backend.resume = lambda ike_sa: self.reactor.callLater(0, self._resume_auth, ike_sa)

    def _resume_auth(self, ike_sa: bytes) -> None:
        self.router.focus(ike_sa)
        try:
            self.engine.resume_auth(ike_sa, self.now())
        except Exception:
            self.stats.errors += 1
            log.exception("engine failed resuming IKE_AUTH")
        finally:
            self.router.focus(None)
        self.udp.flush()

    def _pools_done(self, ike_sa: bytes) -> None:
        self.router.pools_done(ike_sa)
        if self.composition.sql_pools is not None:
            self.composition.sql_pools.forget(ike_sa)

    def _dataplane_event(self, event: Any) -> None:
        """Soft expiry: rekey the CHILD_SA; hard expiry: delete it (RFC 7296, 2.8)."""
        kind = type(event).__name__
        ike_sa, spi_in = getattr(event, "ike_sa", None), getattr(event, "spi_in", None)
        if not isinstance(ike_sa, bytes) or not isinstance(spi_in, int):
            knl_log.info("dataplane event %s", kind)
            return
        action = {"SaSoftExpired": "rekey_child_sa", "SaHardExpired": "delete_child_sa"}.get(kind)
        fn = getattr(self.engine, action, None) if action else None
        if fn is None:
            knl_log.info("dataplane event %s for CHILD_SA %08x: no action", kind, spi_in)
            return
        try:
            fn(ike_sa, spi_in, self.now())
        except IkeError as exc:
            knl_log.info("%s %08x: %s", action, spi_in, exc)
        self.udp.flush()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on the IKE ports and start the connections with ``start_action = start``."""
        host = self.config.ike.listen
        for port, proto in self.udp.ports.items():
            self.listening.append(self.reactor.listenUDP(port, proto, interface=host))
        log.info("IKE listening on %s ports %s", host, sorted(self.udp.ports))
        self._prepare_sockets()
        if self.composition.sql_pools is not None:
            self.composition.sql_pools.open_all()
        for spec in self.config.connections:
            if any(c.start_action == "start" for c in spec.children):
                if spec.remote_addrs:
                    self.reactor.callLater(0, self._initiate_quiet, spec.name)
                else:
                    log.warning("%s: start_action = start needs remote_addrs", spec.name)

    def _initiate_quiet(self, name: str) -> None:
        try:
            self.initiate(name, None)
        except (IkeError, ValueError) as exc:
            log.warning("cannot start %s: %s", name, exc)

    def stop(self, timeout: float = 3.0) -> defer.Deferred[None]:
        """Send a Delete for every established IKE_SA and wait (up to ``timeout``) for the
        answers; then close ports, the dataplane and the evidence sink."""
        self.stopping = True
        pending: list[defer.Deferred[None]] = []
        for spi in list(self.engine):
            state = self.engine.ike_sa_state(spi)
            if state is SaState.ESTABLISHED:
                pending.append(self._closed(spi))
                try:
                    self.udp.delete(spi)
                except IkeError as exc:
                    log.info("delete %s: %s", spi.hex(), exc)
        log.info("shutting down: deleting %d IKE_SA(s)", len(pending))
        done: defer.Deferred[None] = defer.Deferred()

        def finish(_: object = None) -> None:
            if done.called:
                return
            self._close_resources()
            done.callback(None)

        if not pending:
            self.reactor.callLater(0, finish)
        else:
            dl = defer.DeferredList(pending, consumeErrors=True)
            dl.addBoth(finish)
            self.reactor.callLater(timeout, finish)
        return done

    def _close_resources(self) -> None:
        if self.pt_tls is not None:
            try:
                self.pt_tls.close()
            except Exception:
                log.exception("PT-TLS close failed")
        for port in self.listening:
            try:
                port.stopListening()
            except Exception:
                log.debug("stopListening failed", exc_info=True)
        self.listening.clear()
        self.udp.stop_timer()
        try:
            self.dataplane.close()
        except Exception:
            log.exception("dataplane close failed")
        if self.composition.sql_pools is not None:
            self.composition.sql_pools.close()
        if self.evidence_sink is not None and hasattr(self.evidence_sink, "close"):
            try:
                self.evidence_sink.close(timeout=5.0)
            except Exception:
                log.exception("evidence sink close failed")

    # -- events ------------------------------------------------------------------------------

    def _posture_started(self, session: PostureSession) -> None:
        self.stats.posture_assessments += 1

    def _esp(self, data: bytes, remote: Address, local: Address) -> None:
        if not self.dataplane.esp_received(data, remote, local):
            self.stats.esp_dropped += 1

    def _on_event(self, event: Event) -> None:
        now = self.now()
        if isinstance(event, IkeSaEstablished):
            self._ids += 1
            session = self.router.session(event.ike_sa)
            verdict = session.verdict.value if session is not None else None
            rec = SaRecord(
                unique_id=self._ids,
                ike_sa=event.ike_sa,
                connection=event.peer_config,
                state="ESTABLISHED",
                initiator=event.initiator,
                local=event.local,
                remote=event.remote,
                local_id=str(event.local_id),
                remote_id=str(event.remote_id),
                eap_identity=event.eap_identity.decode("utf-8", "replace")
                if event.eap_identity
                else None,
                vips=[str(v) for v in event.virtual_ips],
                suite=f"{event.encr}/{event.integ}/{event.prf}/{event.dh}",
                spi_i=event.spi_i,
                spi_r=event.spi_r,
                nat=event.nat_detected,
                verdict=verdict if session is not None and session.posture_required else None,
                established=now,
            )
            rec.children.update(self._early_children.pop(event.ike_sa, {}))
            self._initiating.pop(event.ike_sa, None)
            self._pools_done(event.ike_sa)
            self.sas[event.ike_sa] = rec
            replaced = self._replacing.pop(event.ike_sa, None)
            if replaced is not None and replaced in self.sas:
                log.info("re-authenticated: deleting the IKE_SA it replaces")
                try:
                    self.udp.delete(replaced)
                except IkeError as exc:
                    log.info("delete %s: %s", replaced.hex(), exc)
            self.stats.established_total += 1
            if session is not None and session.posture_required:
                self.stats.verdicts[session.verdict.value] += 1
                bind = getattr(self.evidence_sink, "bind_address", None)
                if bind is not None and session.connection_id:
                    for vip in rec.vips:
                        self._safe(bind, session.connection_id, vip)
            log.info(
                "IKE_SA %s[%d] established between %s[%s]...%s[%s]%s%s",
                rec.connection,
                rec.unique_id,
                rec.local[0],
                rec.local_id,
                rec.remote[0],
                rec.remote_id,
                f" EAP '{rec.eap_identity}'" if rec.eap_identity else "",
                f" vips {rec.vips}" if rec.vips else "",
            )
            for d in self._waiters.pop(event.ike_sa, []):
                d.callback(rec.to_json(now))
        elif isinstance(event, ChildSaInstalled):
            rec2 = self.sas.get(event.ike_sa)
            child = ChildRecord(
                event.name,
                event.spi_in,
                event.spi_out,
                _alg_name(EncrId, event.encr_id, "ENCR_") + f"-{event.encr_key_bits}",
                _alg_name(IntegId, event.integ_id, "AUTH_") if event.integ_id else "",
                [t.text() for t in event.local_ts],
                [t.text() for t in event.remote_ts],
                event.udp_encap,
                now,
            )
            if rec2 is not None:
                if event.replaces is not None:
                    rec2.children.pop(event.replaces, None)
                rec2.children[event.spi_in] = child
            else:  # IKE_AUTH: the CHILD_SA comes before the IKE_SA's own event
                self._early_children.setdefault(event.ike_sa, {})[event.spi_in] = child
            self.stats.children_installed += 1
            chd_log.info("CHILD_SA %r installed", event)
            self._dataplane_call(self.dataplane.install, event)
            mv = self._moves.get(event.ike_sa)
            if mv is not None and mv.waiting == event.name and event.replaces is None:
                mv.create.pop(0)
                mv.waiting = None
                self.reactor.callLater(0, self._move_step, event.ike_sa)
        elif isinstance(event, ChildSaDeleted):
            rec3 = self.sas.get(event.ike_sa)
            if rec3 is not None:
                rec3.children.pop(event.spi_in, None)
            self._early_children.get(event.ike_sa, {}).pop(event.spi_in, None)
            chd_log.info("CHILD_SA in=%08x out=%08x deleted", event.spi_in, event.spi_out)
            self._dataplane_call(self.dataplane.delete, event)
        elif isinstance(event, ChildSaFailed):
            self.stats.children_failed += 1
            chd_log.warning("CHILD_SA %s failed: notify %d", event.name or "-", event.error)
            mv = self._moves.get(event.ike_sa)
            if mv is not None and mv.waiting == event.name:
                self._move_failed(event.ike_sa, f"CHILD_SA {event.name}: notify {event.error}")
        elif isinstance(event, IkeSaRekeyed):
            rec4 = self.sas.pop(event.ike_sa, None)
            if rec4 is not None:
                rec4.ike_sa = event.new_ike_sa
                rec4.spi_i, rec4.spi_r = event.spi_i, event.spi_r
                self.sas[event.new_ike_sa] = rec4
            self.router.rename(event.ike_sa, event.new_ike_sa)
            if event.ike_sa in self._moves:
                self._moves[event.new_ike_sa] = self._moves.pop(event.ike_sa)
            rename = getattr(self.dataplane, "rename_ike_sa", None)
            if rename is not None:
                rename(event.ike_sa, event.new_ike_sa)
        elif isinstance(event, ReauthRequested):
            self._peer_asks_reauth(event)
        elif isinstance(event, IkeSaClosed):
            rec5 = self.sas.pop(event.ike_sa, None)
            self._moves.pop(event.ike_sa, None)
            self._early_children.pop(event.ike_sa, None)
            self._initiating.pop(event.ike_sa, None)
            self._replacing.pop(event.ike_sa, None)
            session = self.router.drop(event.ike_sa)
            self._pools_done(event.ike_sa)
            if session is not None and session.tncs is not None:
                self._end_posture(session)
            if rec5 is not None:
                self.stats.closed_total += 1
            elif event.error == 24:  # AUTHENTICATION_FAILED
                self.stats.auth_failed += 1
                if (
                    session is not None
                    and session.posture_required
                    and session.method is not None
                    and session.verdict.value == "none"
                ):
                    # Refused by posture: an assessment with its verdict (no access).
                    self.stats.verdicts["none"] += 1
            log.info(
                "IKE_SA %s closed: %s",
                f"{rec5.connection}[{rec5.unique_id}]" if rec5 else event.ike_sa.hex(),
                event.reason,
            )
            for d in self._waiters.pop(event.ike_sa, []):
                d.errback(RuntimeError(f"IKE_SA failed: {event.reason}"))
            for w in self._closed_waiters.pop(event.ike_sa, []):
                w.callback(None)

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.stats.errors += 1
            log.exception("evidence sink failed")

    def _end_posture(self, session: PostureSession) -> None:
        try:
            from nea.pb_tnc.imv import ConnectionState

            for v in getattr(session.tncs, "_validators", ()):
                v.notify_connection_change(session.connection_id, ConnectionState.DELETE)
        except Exception:
            log.debug("posture teardown failed", exc_info=True)

    def _dataplane_call(self, fn: Callable[[Any], None], event: Any) -> None:
        try:
            fn(event)
        except Exception:
            self.stats.errors += 1
            knl_log.exception("dataplane failed on %r", event)

    def _closed(self, spi: bytes) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._closed_waiters.setdefault(spi, []).append(d)
        return d

    def now(self) -> float:
        return float(self.reactor.seconds())

    # -- commands ----------------------------------------------------------------------------

    def find(self, selector: str) -> list[SaRecord]:
        """IKE_SAs by connection name, unique id (``#3`` or ``3``) or SPI (hex)."""
        sel = selector.lstrip("#")
        return [
            r
            for r in self.sas.values()
            if r.connection == selector or str(r.unique_id) == sel or r.ike_sa.hex() == sel
        ]

    def list_sas(self, ike: str | None = None) -> list[dict[str, Any]]:
        now = self.now()
        out = [r.to_json(now) for r in sorted(self.sas.values(), key=lambda r: r.unique_id)]
        for spi in self.engine:
            state = self.engine.ike_sa_state(spi)
            if spi in self.sas or state is None or state is SaState.CLOSED:
                continue
            session = self.router.session(spi)
            out.append(
                {
                    "name": session.connection if session else self._initiating.get(spi),
                    "uniqueid": None,
                    "ike_sa": spi.hex(),
                    "state": "CONNECTING",
                    "detail": state.value,
                    "children": [],
                }
            )
        if ike is not None:
            out = [s for s in out if ike in (s["name"], str(s["uniqueid"]), s["ike_sa"])]
        return out

    def list_conns(self) -> list[dict[str, Any]]:
        out = []
        for spec in self.config.connections:
            out.append(
                {
                    "name": spec.name,
                    "local_addrs": list(spec.local_addrs) or [self.config.ike.listen],
                    "remote_addrs": list(spec.remote_addrs) or ["%any"],
                    "proposals": list(spec.proposals) or ["default"],
                    "pools": list(spec.pools),
                    "local": {
                        "auth": spec.local.auth,
                        "id": spec.local.id
                        or str(self.composition.connections[spec.name].peer.local_id),
                        "certs": [str(p) for p in spec.local.certs],
                    },
                    "remote": {
                        "auth": spec.remote.auth,
                        "id": spec.remote.id or "%any",
                        "eap_id": spec.remote.eap_id,
                    },
                    "posture": dataclasses.asdict(spec.posture),
                    "children": [
                        {
                            "name": c.name,
                            "local_ts": list(c.local_ts) or ["dynamic"],
                            "remote_ts": list(c.remote_ts) or ["dynamic"],
                            "esp_proposals": list(c.esp_proposals) or ["default"],
                            "verdict": list(c.verdict),
                            "pools": list(c.pools) if c.pools is not None else list(spec.pools),
                            "start_action": c.start_action,
                        }
                        for c in spec.children
                    ],
                }
            )
        return out

    def initiate(self, name: str, remote: str | None, port: int = 500) -> bytes:
        spec = self.config.connection(name)
        if spec is None:
            raise ValueError(f"no connection named {name!r}")
        if remote is None:
            addrs = [a for a in spec.remote_addrs if not a.startswith("%") and "/" not in a]
            if not addrs:
                raise ValueError(f"{name}: no remote address (give one, or set remote_addrs)")
            remote = addrs[0]
        spi = self.udp.initiate(name, (remote, port))
        if spi not in self.sas and self.engine.ike_sa_state(spi) is not None:
            self._initiating[spi] = name
        return spi

    def initiate_and_wait(
        self, name: str, remote: str | None, timeout: float = 15.0, port: int = 500
    ) -> defer.Deferred[dict[str, Any]]:
        spi = self.initiate(name, remote, port)
        rec = self.sas.get(spi)
        if rec is not None:
            return defer.succeed(rec.to_json(self.now()))
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiters.setdefault(spi, []).append(d)
        d.addTimeout(timeout, self.reactor)
        return d

    def terminate(self, selector: str, timeout: float = 5.0) -> defer.Deferred[dict[str, Any]]:
        """Delete the matching IKE_SAs (INFORMATIONAL Delete) and wait for the answers."""
        recs = self.find(selector)
        if not recs:
            return defer.fail(ValueError(f"no IKE_SA matches {selector!r}"))
        waits = []
        for r in recs:
            waits.append(self._closed(r.ike_sa))
            self.udp.delete(r.ike_sa)
        result: dict[str, Any] = {
            "terminated": [{"name": r.connection, "uniqueid": r.unique_id} for r in recs]
        }
        dl = defer.DeferredList(waits, consumeErrors=True)
        dl.addTimeout(timeout, self.reactor)

        def done(_: object) -> dict[str, Any]:
            result["complete"] = all(r.ike_sa not in self.sas for r in recs)
            return result

        dl.addBoth(done)
        return dl  # type: ignore[return-value]

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration; established IKE_SAs keep the settings they were made
        with, new IKE_SAs get the new ones.  Listening address/ports need a restart."""
        if self.config_path is None:
            raise ValueError("running on the embedded defaults: nothing to reload")
        new = load_config(self.config_path)
        pools = self.composition.pools
        if dict(new.pools) != dict(self.config.pools):
            pools = None  # type: ignore[assignment]
        comp = compose(
            new,
            router=self.router,
            pools=pools,
            evidence_sink=self.evidence_sink,
            nea_state=self.composition.nea_state,
            posture_counter=self._posture_started,
            fast_keyrings=self.composition.fast_keyrings,
            sql_backend=self.composition.sql_pools,
        )
        if pools is None:
            self._carry_leases(comp)
        affected = set(comp.affected)
        old_names = {c.name: c for c in self.config.connections}
        new_names = {c.name: c for c in new.connections}
        notes = []
        if (new.ike.listen, new.ike.port, new.ike.port_nat_t) != (
            self.config.ike.listen,
            self.config.ike.port,
            self.config.ike.port_nat_t,
        ):
            notes.append("ike.listen/port changes need a restart")
        if new.control != self.config.control:
            notes.append("control.socket changes need a restart")
        self.engine.config = comp.engine_config
        old_sql = self.composition.sql_pools
        self.composition = comp
        if comp.sql_pools is not old_sql:
            if old_sql is not None:
                old_sql.close()
            self._hook_sql_pools()
        self.config = new
        if self.pt_tls is not None:
            from gateway.daemon.pt_tls import _users

            self.pt_tls.set_users(_users(new))
            if new.pt_tls != self.pt_tls.spec:
                notes.append("pt_tls changes (other than users) need a restart")
        self.stats.reloads += 1
        result = {
            "added": sorted(set(new_names) - set(old_names)),
            "removed": sorted(set(old_names) - set(new_names)),
            "changed": sorted(
                n for n in set(old_names) & set(new_names) if old_names[n] != new_names[n]
            ),
            "kept_sas": len(self.sas),
            "notes": notes,
            "reassess": self._reassess_affected(affected, radius=comp.policy_changed),
        }
        log.info("configuration reloaded: %s", result)
        return result

    # -- re-assessment -----------------------------------------------------------------------

    def reassess(self, selector: str | None = None) -> dict[str, Any]:
        """Ask IKE_SAs to re-authenticate (RFC 4478 AUTH_LIFETIME 0): PT-EAP runs again in
        the new IKE_SA's IKE_AUTH and its verdict picks its children and pool; the old IKE_SA
        is deleted by the client (charon: reauthentication) or by us after
        ``[ike] reauth_grace``.  ``selector`` None: every IKE_SA with posture."""
        if selector is None:
            recs = [r for r in self.sas.values() if r.verdict is not None]
        else:
            recs = self.find(selector)
            if not recs:
                raise ValueError(f"no IKE_SA matches {selector!r}")
        asked = []
        for r in recs:
            if self._ask_reauth(r):
                asked.append({"name": r.connection, "uniqueid": r.unique_id})
        self.udp.flush()
        return {"reassess": asked}

    def _ask_reauth(self, rec: SaRecord) -> bool:
        try:
            self.engine.request_reauth(rec.ike_sa, self.now(), 0)
        except IkeError as exc:
            log.info("reassess %s[%d]: %s", rec.connection, rec.unique_id, exc)
            return False
        self.stats.reassessments += 1
        if rec.reassess_asked is None:
            rec.reassess_asked = self.now()
            self.reactor.callLater(self.config.ike.reauth_grace, self._reauth_deadline, rec.ike_sa)
        log.info(
            "IKE_SA %s[%d]: asked to re-authenticate (posture re-assessment)",
            rec.connection,
            rec.unique_id,
        )
        return True

    REAUTH_MARGIN = 10.0
    """Seconds before the peer's AUTH_LIFETIME runs out that we re-authenticate."""

    def _peer_asks_reauth(self, event: ReauthRequested) -> None:
        """RFC 4478 from the peer: re-authenticate an IKE_SA we initiated
        (make-before-break: a new IKE_SA, then Delete for the old one)."""
        rec = self.sas.get(event.ike_sa)
        if rec is None or not rec.initiator:
            log.info(
                "IKE_SA %s: AUTH_LIFETIME %ds from the peer; we are not its initiator",
                event.ike_sa.hex(),
                event.lifetime,
            )
            return
        delay = max(0.0, event.lifetime - self.REAUTH_MARGIN)
        log.info(
            "IKE_SA %s[%d]: peer wants re-authentication within %ds; in %ds",
            rec.connection,
            rec.unique_id,
            event.lifetime,
            int(delay),
        )
        self.reactor.callLater(delay, self._reauthenticate, event.ike_sa)

    def _reauthenticate(self, old: bytes) -> None:
        rec = self.sas.get(old)
        if rec is None or old in self._replacing.values():
            return
        try:
            new = self.initiate(rec.connection, rec.remote[0])
        except (IkeError, ValueError) as exc:
            log.warning("re-authentication of %s[%d]: %s", rec.connection, rec.unique_id, exc)
            return
        self._replacing[new] = old

    def _reauth_deadline(self, ike_sa: bytes) -> None:
        rec = self.sas.get(ike_sa)
        if rec is None or rec.reassess_asked is None:
            return
        log.info(
            "IKE_SA %s[%d] did not re-authenticate within %ds: deleting it",
            rec.connection,
            rec.unique_id,
            int(self.config.ike.reauth_grace),
        )
        try:
            self.udp.delete(ike_sa)
        except IkeError as exc:
            log.info("delete %s: %s", ike_sa.hex(), exc)

    def _reassess_affected(self, affected: set[int], *, radius: bool = False) -> dict[str, Any]:
        """A policy reload changed what applies to these posture connections (IKE_SAs keep
        theirs while they live).  ``radius``: the policy changed; a RADIUS assessment's
        connection ends with its conversation, so every live RADIUS session with posture is
        re-assessed."""
        ike = []
        pt_tls: list[dict[str, Any]] = []
        front = self.pt_tls
        if front is not None:
            pt_tls = front.reassess(affected)
            affected -= {int(p["connection"]) for p in pt_tls}
        for spi, session in list(self.router.sessions.items()):
            rec = self.sas.get(spi)
            if rec is not None and session.connection_id in affected:
                affected.discard(session.connection_id)
                tied = self._pt_tls_sessions(rec)
                if tied and any(front.retry(s) for s in tied):
                    # re-assessed over PT-TLS inside its tunnel: no new IKE_SA needed
                    pt_tls.append({"name": rec.connection, "uniqueid": rec.unique_id})
                    continue
                if self._ask_reauth(rec):
                    ike.append({"name": rec.connection, "uniqueid": rec.unique_id})
        self.udp.flush()
        sent = 0
        hook = getattr(self.radius, "reassess", None)
        if hook is not None and radius:
            sent = hook(set(getattr(self.radius, "identities", {})))
        out: dict[str, Any] = {"ike": ike, "radius": sent}
        if front is not None:
            out["pt_tls"] = pt_tls
        return out

    # -- PT-TLS verdicts: moving an IKE_SA between its allow and isolate children -----------

    def _pt_tls_sessions(self, rec: SaRecord) -> list[Any]:
        """The live PT-TLS sessions tied to an IKE_SA (by its virtual IPs, or the one that
        moved it last)."""
        front = self.pt_tls
        if front is None:
            return []
        out = [s for v in rec.vips for s in front.find(v)]
        last = front.sessions.get(rec.pt_tls) if rec.pt_tls is not None else None
        if last is not None and last.live and last not in out:
            out.append(last)
        return out

    def pt_tls_verdict(self, session: Any, verdict: str) -> None:
        """A PT-TLS assessment finished (first, CRETRY or SRETRY).  When the connection comes
        from an IKE_SA's virtual IP (the endpoint reaches us through its tunnel) - or else
        its authenticated identity is that of exactly one IKE_SA with posture - that IKE_SA
        moves to the children of the new verdict without a new IKE_SA: CREATE_CHILD_SA for
        them, then Delete for the children of the old verdict (and the dataplane follows the
        install/delete events).  ``none`` deletes the IKE_SA.  An IKE_SA that had no posture
        assessment in IKE_AUTH (a client without PT-EAP, e.g. Debian's charon) counts as
        allow; it is moved when the session comes from the virtual IP we leased it."""
        self.stats.verdicts[verdict] = self.stats.verdicts.get(verdict, 0) + 1
        self.stats.pt_tls_assessments += 1
        rec = next((r for r in self.sas.values() if session.peer in r.vips), None)
        if rec is None and session.identity:
            # not through a tunnel: the one IKE_SA of the same authenticated identity
            mine = [
                r
                for r in self.sas.values()
                if session.identity in (r.eap_identity, r.remote_id) and r.verdict is not None
            ]
            rec = mine[0] if len(mine) == 1 else None
        if rec is None:
            return
        rec.pt_tls = session.connection_id
        if rec.verdict is None and rec.initiator:
            log.info(
                "PT-TLS verdict %s for %s[%d]: we initiated it (no posture); ignored",
                verdict,
                rec.connection,
                rec.unique_id,
            )
            return
        self.move(rec, verdict)

    def move(self, rec: SaRecord, verdict: str) -> bool:
        """Move an IKE_SA to the children of ``verdict`` (``allow``/``isolate``/``none``);
        False when it already has them (or a move there is under way)."""
        mv = self._moves.get(rec.ike_sa)
        current = rec.verdict or "allow"  # without posture in IKE_AUTH: allow
        if (mv.verdict if mv is not None else current) == verdict:
            return False
        if verdict == "none":
            log.info(
                "IKE_SA %s[%d]: re-assessment says no access: deleting it",
                rec.connection,
                rec.unique_id,
            )
            rec.verdict = "none"
            self._moves.pop(rec.ike_sa, None)
            try:
                self.udp.delete(rec.ike_sa)
            except IkeError as exc:
                log.info("delete %s: %s", rec.ike_sa.hex(), exc)
            return True
        runtime = self.composition.connections.get(rec.connection)
        spec = self.config.connection(rec.connection)
        if runtime is None or spec is None:
            log.warning("%s: connection gone, cannot move its IKE_SA", rec.connection)
            return False
        children = runtime.peer.children
        wanted = tuple(
            c for c, cs in zip(children, spec.children, strict=True) if verdict in cs.verdict
        )
        previous = tuple(
            c for c, cs in zip(children, spec.children, strict=True) if current in cs.verdict
        )
        names = {c.name for c in wanted}
        have = {ch.name for ch in rec.children.values()}
        self._moves[rec.ike_sa] = _Move(
            verdict,
            [c for c in wanted if c.name not in have],
            [spi for spi, ch in rec.children.items() if ch.name not in names],
            previous,
        )
        try:
            self.engine.set_children(rec.ike_sa, wanted)
        except IkeError as exc:
            self._moves.pop(rec.ike_sa, None)
            log.info("move %s: %s", rec.ike_sa.hex(), exc)
            return False
        log.info(
            "IKE_SA %s[%d]: %s -> %s after re-assessment: children %s without a new IKE_SA",
            rec.connection,
            rec.unique_id,
            current,
            verdict,
            sorted(names),
        )
        self._move_step(rec.ike_sa)
        return True

    MOVE_RETRY = 0.5
    """Seconds before the next try when the IKE_SA has a request outstanding."""

    def _move_step(self, ike_sa: bytes) -> None:
        mv = self._moves.get(ike_sa)
        rec = self.sas.get(ike_sa)
        if mv is None or rec is None or mv.waiting is not None:
            return
        if mv.create:
            cfg = mv.create[0]
            try:
                self.engine.create_child_sa(ike_sa, cfg, self.now())
            except IkeError as exc:
                chd_log.debug("CREATE_CHILD_SA %s later: %s", cfg.name, exc)
                self.reactor.callLater(self.MOVE_RETRY, self._move_step, ike_sa)
                return
            mv.waiting = cfg.name
            self.udp.flush()
            return
        grace = self.config.pt_tls.move_grace if self.config.pt_tls is not None else 0.0
        if mv.delete and not mv.grace_over and grace > 0:
            # the new children are up; the old ones carry the PT-TLS result still in flight
            mv.grace_over, mv.waiting = True, ""
            self.reactor.callLater(grace, self._move_grace_over, ike_sa, mv)
            return
        for spi in mv.delete:
            try:
                self.engine.delete_child_sa(ike_sa, spi, self.now())
            except IkeError as exc:
                chd_log.info("delete CHILD_SA %08x: %s", spi, exc)
        del self._moves[ike_sa]
        rec.verdict = mv.verdict
        self.stats.moves += 1
        log.info("IKE_SA %s[%d] moved to %s", rec.connection, rec.unique_id, mv.verdict)
        self.udp.flush()

    def _move_grace_over(self, ike_sa: bytes, mv: _Move) -> None:
        key = next((k for k, v in self._moves.items() if v is mv), None)  # rekeyed meanwhile?
        if key is not None:
            mv.waiting = None
            self._move_step(key)

    def _move_failed(self, ike_sa: bytes, why: str) -> None:
        mv = self._moves.pop(ike_sa, None)
        rec = self.sas.get(ike_sa)
        if mv is None or rec is None:
            return
        log.warning(
            "IKE_SA %s[%d]: cannot move to %s (%s); it keeps its %s children",
            rec.connection,
            rec.unique_id,
            mv.verdict,
            why,
            rec.verdict,
        )
        try:
            self.engine.set_children(ike_sa, mv.previous)
        except IkeError:
            pass

    def _carry_leases(self, comp: Composition) -> None:
        """New pools: addresses leased to live IKE_SAs stay reserved for them."""
        for rec in self.sas.values():
            for v in rec.vips:
                import ipaddress

                addr = ipaddress.ip_address(v)
                for name, pool in comp.pools.pools.items():
                    if addr in pool:
                        comp.pools.acquire(name, rec.remote_id, addr)

    def stats_json(self) -> dict[str, Any]:
        half_open = 0
        connecting = 0
        for spi in self.engine:
            state = self.engine.ike_sa_state(spi)
            if state is SaState.R_INIT_DONE:
                half_open += 1
            elif state not in (SaState.ESTABLISHED, SaState.CLOSED, None):
                connecting += 1
        s = self.stats
        engine_stats: dict[str, int] = dict(getattr(self.engine, "stats", None) or {})
        return {
            "engine": engine_stats,
            "uptime": round(time.time() - s.started),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started)),
            "ike_sas": len(self.sas),
            "half_open": half_open,
            "connecting": connecting,
            "child_sas": sum(len(r.children) for r in self.sas.values()),
            "packets": {
                "ike_received": s.ike_received,
                "ike_sent": s.ike_sent,
                "invalid": s.invalid + engine_stats.get("undecodable", 0),
                "errors": s.errors,
                "esp_received": s.esp_received,
                "esp_dropped": s.esp_dropped,
                "keepalives": s.keepalives,
            },
            "totals": {
                "established": s.established_total,
                "closed": s.closed_total,
                "auth_failed": s.auth_failed,
                "children_installed": s.children_installed,
                "children_failed": s.children_failed,
                "posture_assessments": s.posture_assessments,
                "reassessments": s.reassessments,
                "pt_tls_assessments": s.pt_tls_assessments,
                "moves": s.moves,
                "reloads": s.reloads,
            },
            "verdicts": dict(s.verdicts),
            "dataplane": self.dataplane.name,
            "dataplane_reason": getattr(self.dataplane, "reason", None),
            "listen": {
                "address": self.config.ike.listen,
                "ports": [self.config.ike.port, self.config.ike.port_nat_t],
            },
            "pools": [
                {"name": p.name, "size": p.size, "online": p.online, "ranges": list(p.ranges)}
                for p in self.composition.pools.status()
            ],
            "radius": self.radius is not None,
            "pt_tls": self.pt_tls.status() if self.pt_tls is not None else None,
        }

    def command(self, name: str, args: dict[str, Any]) -> Any:
        """Run one control command; returns data or a Deferred of data."""
        if name == "list-sas":
            return self.list_sas(args.get("ike"))
        if name == "list-conns":
            return self.list_conns()
        if name == "list-pools":
            pools = [dataclasses.asdict(p) for p in self.composition.pools.status()]
            sql = self.composition.sql_pools
            if sql is None or not sql.specs:
                return pools
            d = sql.status()
            d.addCallback(lambda more: pools + [dataclasses.asdict(p) for p in more])
            return d
        if name == "stats":
            return self.stats_json()
        if name == "reload":
            return self.reload()
        if name == "reassess":
            sel = args.get("ike")
            if not args.get("all") and not isinstance(sel, str):
                raise ValueError("reassess needs --all or --ike NAME|ID")
            return self.reassess(None if args.get("all") else sel)
        if name == "initiate":
            ike = args.get("ike")
            if not isinstance(ike, str):
                raise ValueError("initiate needs --ike NAME")
            return self.initiate_and_wait(
                ike,
                args.get("remote"),
                float(args.get("timeout", 15.0)),
                int(args.get("remote_port", 500)),
            )
        if name == "terminate":
            ike = args.get("ike")
            if not isinstance(ike, str):
                raise ValueError("terminate needs --ike NAME|ID")
            return self.terminate(ike, float(args.get("timeout", 5.0)))
        raise ValueError(f"unknown command {name!r}")
