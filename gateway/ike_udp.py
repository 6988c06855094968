"""Twisted adapter for the IKEv2 engine: UDP 500 and 4500 (RFC 7296, 2.23; RFC 3948).

:class:`IkeUdpService` owns one :class:`ike.sa.IkeEngine` and two :class:`IkePort` datagram
protocols.  On 4500 an IKE message is preceded by the four-octet non-ESP marker; anything
else there is UDP-encapsulated ESP (handed to ``esp_handler``, the dataplane) or a one-octet
NAT keepalive (dropped).  The service feeds the engine, writes what it returns, keeps a single
``callLater`` for the engine's next timer and passes events to ``on_event``.

Bind to a specific address, not the wildcard: the engine hashes the local address into the
NAT detection payloads (RFC 7296, 2.23), so with ``0.0.0.0`` every peer looks NATed and all
ESP is UDP-encapsulated.  (A wildcard listener would need IP_PKTINFO to learn the address.)

``python -m gateway.ike_udp --config FILE.json`` runs a standalone responder/initiator from a
small JSON file (used by the interop tests; the daemon builds its engine from its own config):

    {"listen": "192.0.2.1",
     "events": "/path/events.jsonl",
     "connections": [{"name": "gw", "local_id": "gw.test", "remote_id": null,
                      "local_auth": "psk", "remote_auth": "psk", "psk": "secret",
                      "cert": "gw.crt", "key": "gw.key", "cacerts": ["ca.crt"],
                      "pool": "10.3.0.0/24", "dns": ["10.1.0.53"],
                      "proposals": ["aes128-sha256-x25519"],
                      "children": [{"name": "net", "local_ts": ["10.1.0.0/16"],
                                    "esp_proposals": ["aes128gcm16"]}]}],
     "initiate": [{"connection": "gw", "remote": "192.0.2.2"}]}

``vips`` (e.g. ``["0.0.0.0"]``) on a connection requests a virtual IP as initiator.
Ports other than 500/4500: ``"ports": [10500, 14500]`` (IKE, NAT-T: the engine's
``natt_port``), ``"remote_natt_port": 14500`` on a connection (the peer's NAT-T port) and
``"port": 10500`` on an ``initiate`` entry (the peer's IKE port).
Testing aids, all off unless present: ``"stats": "stats.json"`` (counters rewritten when they
change), ``"keepalive_interval": 2``, ``"cookie_threshold": 100``, and
``"debug_key_log": "keys.jsonl"`` which turns on ``EngineConfig.debug_export_keys`` and
appends every IKE_SA's SPIs and SK_e/SK_a (mode 0600) for tshark's
``isakmp.ikev2_decryption_table`` -- never use it in production.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twisted.internet import protocol

from gateway.engine_timer import EngineTimer
from ike.config import (
    AuthClass,
    ChildConfig,
    EngineConfig,
    Identity,
    IkeProposal,
    PeerConfig,
)
from ike.constants import NON_ESP_MARKER
from ike.payloads import IpAddress
from ike.sa import (
    NAT_KEEPALIVE,
    Address,
    ChildSaInstalled,
    Event,
    IkeEngine,
    IkeSaClosed,
    IkeSaEstablished,
    IkeSaRekeyed,
    IkeSaSecrets,
)

__all__ = ["NATT_PORT", "Clock", "DelayedCall", "IkePort", "IkeUdpService", "main"]

log = logging.getLogger("gateway.ike_udp")

NATT_PORT = 4500


class DelayedCall(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of Twisted's IReactorTime the service uses (the reactor or a test Clock)."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[[], None], /) -> DelayedCall: ...


class IkePort(protocol.DatagramProtocol):
    """One UDP socket of an :class:`IkeUdpService`: its IKE port (500) or its NAT-T port
    (4500, or whatever ``EngineConfig.natt_port`` says), where RFC 3948 framing applies."""

    def __init__(self, service: IkeUdpService, host: str, port: int) -> None:
        self.service = service
        self.host = host
        self.port = port

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        remote = (str(addr[0]), int(addr[1]))
        if self.port == self.service.natt_port:
            if len(data) == 1 and data == b"\xff":
                self.service.stats["keepalives_received"] += 1
                return  # RFC 3948, 2.3: NAT keepalive
            if data[:4] != NON_ESP_MARKER:
                self.service.esp_received(data, remote, (self.host, self.port))
                return
            data = data[4:]
        self.service.ike_received(data, remote, (self.host, self.port))

    def send(self, data: bytes, remote: Address) -> None:
        if self.transport is None:
            return
        if self.port == self.service.natt_port and data != NAT_KEEPALIVE:
            data = NON_ESP_MARKER + data
        transport: Any = self.transport
        transport.write(data, remote)


class IkeUdpService:
    """Connects an engine to its ports, the reactor's clock and the event consumer.

    ``ports`` are the UDP ports to serve (normally the IKE port and the NAT-T port); the one
    equal to the engine's ``EngineConfig.natt_port`` speaks RFC 3948 (non-ESP marker, ESP,
    keepalives).  Whoever binds them sets :attr:`IkePort.port` to the bound number (and
    re-keys :attr:`ports` when an ephemeral port was asked for)."""

    def __init__(
        self,
        engine: IkeEngine,
        clock: Clock,
        host: str,
        on_event: Callable[[Event], None] = lambda event: None,
        esp_handler: Callable[[bytes, Address, Address], None] | None = None,
        ports: tuple[int, ...] = (500, NATT_PORT),
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.host = host
        self.on_event = on_event
        self.esp_handler = esp_handler
        self.natt_port = engine.config.natt_port
        """The port that speaks RFC 3948 (the engine's own NAT-T port)."""
        self.ports = {p: IkePort(self, host, p) for p in ports}
        self.timer = EngineTimer(clock, self.now, engine.get_timer, self._fire)
        """The one reactor call kept at the engine's next deadline."""
        self.stats: dict[str, int] = dict.fromkeys(
            ("keepalives_received", "esp_received", "esp_without_dataplane"), 0
        )
        """Datagrams on 4500 that never reach the engine (its own counters: engine.stats)."""

    def bound_ike_port(self) -> int:
        """The bound port IKE starts from: the lowest that is not the NAT-T port (the NAT-T
        port itself when it is the only one)."""
        plain = [p for p in self.ports if p != self.natt_port]
        return min(plain) if plain else min(self.ports)

    def now(self) -> float:
        return float(self.clock.seconds())

    def ike_received(self, data: bytes, remote: Address, local: Address) -> None:
        self.engine.receive_datagram(data, remote, self.now(), local=local)
        self.flush()

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        self.stats["esp_received"] += 1
        if self.esp_handler is not None:
            self.esp_handler(data, remote, local)
        else:
            self.stats["esp_without_dataplane"] += 1

    def initiate(self, name: str, remote: Address) -> bytes:
        spi = self.engine.initiate(
            name, self.now(), local=(self.host, self.bound_ike_port()), remote=remote
        )
        self.flush()
        return spi

    def delete(self, ike_sa: bytes) -> None:
        self.engine.delete_ike_sa(ike_sa, self.now())
        self.flush()

    def flush(self) -> None:
        """Send queued datagrams, deliver events and re-arm the timer."""
        for d in self.engine.datagrams_to_send(self.now()):
            port = self.ports.get(d.local[1]) or self.ports[self.bound_ike_port()]
            port.send(d.data, d.remote)
        while (event := self.engine.next_event()) is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("event consumer failed on %r", type(event).__name__)
        self.timer.arm()

    def stop_timer(self) -> None:
        """Cancel the pending engine timer (the service is shutting down)."""
        self.timer.cancel()

    def _fire(self) -> None:
        self.engine.handle_timer(self.now())
        self.flush()


# --------------------------------------------------------------------------------------------
# Standalone runner (interop tests, experiments)


class _SimplePool:
    """In-memory address pool for the standalone runner."""

    def __init__(self, network: str) -> None:
        self._free: list[IpAddress] = list(ipaddress.ip_network(network).hosts())
        self._leases: dict[Identity, IpAddress] = {}

    def acquire(
        self, identity: Identity, requested: IpAddress | None, version: int
    ) -> IpAddress | None:
        if identity in self._leases:
            return self._leases[identity]
        for addr in self._free:
            if addr.version == version:
                self._free.remove(addr)
                self._leases[identity] = addr
                return addr
        return None

    def release(self, identity: Identity, address: IpAddress) -> None:
        if self._leases.get(identity) == address:
            del self._leases[identity]
            self._free.append(address)


def _load_peer(spec: dict[str, Any], base: Path) -> PeerConfig:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    def path(p: str) -> Path:
        return (base / p) if not Path(p).is_absolute() else Path(p)

    cert = (
        x509.load_pem_x509_certificate(path(spec["cert"]).read_bytes())
        if spec.get("cert")
        else None
    )
    key = load_pem_private_key(path(spec["key"]).read_bytes(), None) if spec.get("key") else None
    cas = tuple(
        x509.load_pem_x509_certificate(path(c).read_bytes()) for c in spec.get("cacerts", ())
    )
    inter = tuple(
        x509.load_pem_x509_certificate(path(c).read_bytes()) for c in spec.get("intermediates", ())
    )
    children = tuple(
        dataclasses.replace(
            ChildConfig.make(
                c["name"], c.get("local_ts", ()), c.get("remote_ts", ()), c.get("esp_proposals", ())
            ),
            rekey_time=c.get("rekey_time"),
        )
        for c in spec.get("children", ())
    )
    kwargs: dict[str, Any] = {}
    if spec.get("eap"):
        kwargs["eap_server"] = _eap_server_factory(spec["eap"])
    if spec.get("eap_peer"):
        kwargs["eap_peer"] = _eap_peer_factory(spec["eap_peer"])
    if spec.get("proposals"):
        kwargs["ike_proposals"] = tuple(IkeProposal.parse(p) for p in spec["proposals"])
    return PeerConfig(
        name=spec["name"],
        local_id=Identity.parse(spec["local_id"]),
        remote_id=Identity.parse(spec["remote_id"]) if spec.get("remote_id") else None,
        local_auth=AuthClass(spec.get("local_auth", "psk")),
        remote_auth=AuthClass(spec.get("remote_auth", "psk")),
        psk=spec["psk"].encode() if spec.get("psk") else None,
        certificate=cert,
        private_key=key,  # type: ignore[arg-type]
        intermediates=inter,
        trust_anchors=cas,
        children=children,
        pool=_SimplePool(spec["pool"]) if spec.get("pool") else None,
        dns=tuple(ipaddress.ip_address(d) for d in spec.get("dns", ())),
        request_vips=tuple(ipaddress.ip_address(v) for v in spec.get("vips", ())),
        rekey_time=spec.get("rekey_time"),
        remote_natt_port=int(spec.get("remote_natt_port", NATT_PORT)),
        **kwargs,
    )


def _eap_server_factory(spec: dict[str, Any]) -> Callable[[Identity], Any]:
    """``{"methods": ["mschapv2", "md5", "gtc", "tls"], "users": {"bob": "hello"},
    "tls": {"cert": "gw.chain.pem", "key": "gw.key", "ca": ["root.pem"]}}``."""
    from ike.eap.methods.credentials import StaticPasswords, password_check
    from ike.eap.methods.gtc import GtcServerMethod
    from ike.eap.methods.md5 import Md5ServerMethod
    from ike.eap.methods.mschapv2 import MsChapV2ServerMethod
    from ike.eap.packet import EapType
    from ike.eap.server import EapServer

    users = StaticPasswords(spec.get("users", {}))
    known: dict[str, tuple[int, Any]] = {
        "md5": (EapType.MD5_CHALLENGE, lambda i: Md5ServerMethod(i, users)),
        "mschapv2": (EapType.MSCHAPV2, lambda i: MsChapV2ServerMethod(i, users)),
        "gtc": (EapType.GTC, lambda i: GtcServerMethod(i, password_check(users))),
    }
    if "tls" in spec:
        from ike.eap_tls.method import EapTlsServer
        from ike.eap_tls.tls import TlsServerConfig

        tls = spec["tls"]
        tls_config = TlsServerConfig(
            cert_chain_pem=Path(tls["cert"]).read_bytes(),
            key_pem=Path(tls["key"]).read_bytes(),
            ca_pems=tuple(Path(c).read_bytes() for c in tls.get("ca", ())),
        )
        known["tls"] = (EapType.TLS, lambda i: EapTlsServer(tls_config, i))
    methods = [known[m] for m in spec.get("methods", ["mschapv2"])]

    def make(identity: Identity) -> EapServer:
        return EapServer(methods)

    return make


def _eap_peer_factory(spec: dict[str, Any]) -> Callable[[], Any]:
    """``{"method": "mschapv2", "identity": "bob", "password": "hello"}``."""
    from ike.eap.methods.gtc import GtcPeerMethod
    from ike.eap.methods.md5 import Md5PeerMethod
    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap.packet import EapType
    from ike.eap.peer import EapPeer

    identity = spec["identity"].encode()
    password = spec["password"]
    known: dict[str, tuple[int, Any]] = {
        "md5": (EapType.MD5_CHALLENGE, lambda: Md5PeerMethod(password)),
        "mschapv2": (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(identity, password)),
        "gtc": (EapType.GTC, lambda: GtcPeerMethod(password)),
    }

    def make() -> EapPeer:
        return EapPeer(identity, [known[spec.get("method", "mschapv2")]])

    return make


def _event_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"event": type(event).__name__, "ike_sa": event.ike_sa.hex()}
    if isinstance(event, IkeSaEstablished):
        out.update(
            peer=event.peer_config,
            remote_id=str(event.remote_id),
            local_id=str(event.local_id),
            encr=event.encr,
            integ=event.integ,
            prf=event.prf,
            dh=event.dh,
            eap_identity=event.eap_identity.decode() if event.eap_identity else None,
            vips=[str(v) for v in event.virtual_ips],
            remote=list(event.remote),
            nat=event.nat_detected,
        )
    elif isinstance(event, ChildSaInstalled):
        out.update(
            name=event.name,
            spi_in=f"{event.spi_in:08x}",
            spi_out=f"{event.spi_out:08x}",
            encr=event.encr_id,
            encr_bits=event.encr_key_bits,
            integ=event.integ_id,
            local_ts=[str(t) for t in event.local_ts],
            remote_ts=[str(t) for t in event.remote_ts],
            udp_encap=event.udp_encap,
        )
    elif isinstance(event, IkeSaRekeyed):
        out.update(new_ike_sa=event.new_ike_sa.hex())
    elif isinstance(event, IkeSaClosed):
        out.update(reason=event.reason, error=event.error)
    return out


def _write_key_line(path: Path, keys: IkeSaSecrets) -> None:
    """One JSON line per IKE_SA: the fields of Wireshark's ``ikev2_decryption_table``."""
    line = {
        "spi_i": keys.spi_i.hex(),
        "spi_r": keys.spi_r.hex(),
        "sk_ei": keys.sk_ei.hex(),
        "sk_er": keys.sk_er.hex(),
        "sk_ai": keys.sk_ai.hex(),
        "sk_ar": keys.sk_ar.hex(),
        "encr": keys.encr_id,
        "encr_bits": keys.encr_key_bits,
        "integ": keys.integ_id,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def _dump_stats_every(reactor: Any, service: IkeUdpService, path: Path, interval: float) -> None:
    """Rewrite ``path`` (JSON: engine and adapter counters) whenever they change."""
    last: dict[str, int] = {}

    def dump() -> None:
        nonlocal last
        now = {**service.engine.stats, **service.stats, "ike_sas": len(list(service.engine))}
        if now != last:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(json.dumps(now))
            tmp.replace(path)
            last = now
        reactor.callLater(interval, dump)

    reactor.callWhenRunning(dump)


def main(argv: list[str] | None = None) -> int:
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    parser = argparse.ArgumentParser(prog="python -m gateway.ike_udp")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    spec = json.loads(args.config.read_text())
    base = args.config.parent
    peers = tuple(_load_peer(p, base) for p in spec["connections"])
    engine_kw: dict[str, Any] = {}
    if spec.get("fragment_size"):
        engine_kw["fragment_size"] = int(spec["fragment_size"])
    if spec.get("cookie_threshold") is not None:
        engine_kw["cookie_threshold"] = int(spec["cookie_threshold"])
    if spec.get("keepalive_interval") is not None:
        engine_kw["keepalive_interval"] = float(spec["keepalive_interval"])
    ports = tuple(int(p) for p in spec.get("ports", (500, NATT_PORT)))
    if len(ports) != 2 or ports[0] == ports[1]:
        parser.error('"ports" must be two different ports: [IKE, NAT-T]')
    engine_kw["natt_port"] = ports[1]
    key_log = Path(spec["debug_key_log"]) if spec.get("debug_key_log") else None
    if key_log is not None:
        engine_kw["debug_export_keys"] = True
        log.warning("debug_key_log: writing IKE SA keys to %s (testing only)", key_log)
    engine = IkeEngine(EngineConfig(peers=peers, **engine_kw))
    events_path = Path(spec["events"]) if spec.get("events") else None

    def on_event(event: Event) -> None:
        line = json.dumps(_event_json(event))
        log.info("event %s", line)
        if events_path is not None:
            with events_path.open("a") as fh:
                fh.write(line + "\n")
        if key_log is not None:
            spi = None
            if isinstance(event, IkeSaEstablished):
                spi = event.ike_sa
            elif isinstance(event, IkeSaRekeyed):
                spi = event.new_ike_sa
            if spi is not None:
                _write_key_line(key_log, engine.export_keys(spi))

    host = spec.get("listen", "0.0.0.0")  # noqa: S104 - a gateway listens where it is told
    service = IkeUdpService(engine, reactor, host, on_event, ports=ports)
    for port, proto in service.ports.items():
        reactor.listenUDP(port, proto, interface=host)
    if spec.get("stats"):
        _dump_stats_every(reactor, service, Path(spec["stats"]), 0.2)
    log.info("IKE listening on %s ports %s", host, sorted(service.ports))
    for item in spec.get("initiate", ()):
        remote = (item["remote"], int(item.get("port", 500)))
        reactor.callWhenRunning(service.initiate, item["connection"], remote)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
