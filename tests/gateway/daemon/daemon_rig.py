"""A :class:`gateway.daemon.Gateway` on a fake clock and fake UDP transports, with the
project's own IKE engine as the client (no sockets)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from gateway.daemon import Gateway, load_config
from gateway.daemon.service import Dataplane
from ike.config import AuthClass, ChildConfig, EngineConfig, Identity, PeerConfig
from ike.constants import NON_ESP_MARKER
from ike.sa import ChildSaDeleted, ChildSaInstalled, Event, IkeEngine

GW_IP = "192.0.2.1"
CL_ADDR = ("192.0.2.2", 500)
PSK = "correct horse battery staple"


class FakeUdp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


class RecordingDataplane(Dataplane):
    name = "recording"

    def __init__(self) -> None:
        self.installed: list[ChildSaInstalled] = []
        self.deleted: list[ChildSaDeleted] = []

    def install(self, event: ChildSaInstalled) -> None:
        self.installed.append(event)

    def delete(self, event: ChildSaDeleted) -> None:
        self.deleted.append(event)


@dataclass
class Rig:
    gateway: Gateway
    clock: Clock
    dataplane: RecordingDataplane
    transports: dict[int, FakeUdp]
    client: IkeEngine | None = None
    client_events: list[Event] = field(default_factory=list)

    def connect(self, peer: PeerConfig) -> bytes:
        self.client = IkeEngine(EngineConfig(peers=(peer,)))
        now = self.clock.seconds()
        spi = self.client.initiate(peer.name, now, local=CL_ADDR, remote=(GW_IP, 500))
        self.pump()
        return spi

    def send_raw(self, data: bytes, port: int = 500) -> None:
        self.gateway.udp.ports[port].datagramReceived(data, CL_ADDR)

    def pump(self, rounds: int = 80) -> None:
        assert self.client is not None
        for _ in range(rounds):
            busy = False
            for d in self.client.datagrams_to_send(self.clock.seconds()):
                busy = True
                port = d.remote[1]
                data = NON_ESP_MARKER + d.data if port == 4500 else d.data
                self.gateway.udp.ports[port].datagramReceived(data, d.local)
            for port, t in self.transports.items():
                sent, t.sent = t.sent, []
                for data, addr in sent:
                    busy = True
                    if port == 4500:
                        data = data[4:]
                    self.client.receive_datagram(
                        data, (GW_IP, port), self.clock.seconds(), local=addr
                    )
            while (ev := self.client.next_event()) is not None:
                self.client_events.append(ev)
            if not busy:
                return

    def events(self, kind: type) -> list[Any]:
        return [e for e in self.client_events if isinstance(e, kind)]


def make_rig(path: Path, evidence_sink: Any = None) -> Rig:
    config = load_config(path)
    clock = Clock()
    dataplane = RecordingDataplane()
    gw = Gateway(config, clock, config_path=path, dataplane=dataplane, evidence_sink=evidence_sink)
    transports = {}
    for port, proto in gw.udp.ports.items():
        t = FakeUdp()
        proto.transport = t  # type: ignore[assignment]
        transports[port] = t
    return Rig(gw, clock, dataplane, transports)


def psk_client(**kw: Any) -> PeerConfig:
    base: dict[str, Any] = dict(
        name="home",
        local_id=Identity.parse("cl.test"),
        remote_id=Identity.parse("gw.test"),
        local_auth=AuthClass.PSK,
        remote_auth=AuthClass.PSK,
        psk=PSK.encode(),
        children=(ChildConfig.make("home", remote_ts=["10.1.0.0/16"]),),
        request_vips=(ipaddress.ip_address("0.0.0.0"),),
    )
    base.update(kw)
    return PeerConfig(**base)


PSK_CONFIG = f"""
dataplane = "none"

[ike]
listen = "{GW_IP}"
port = 500
port_nat_t = 4500

[control]
socket = "ctl.sock"

[pools.rw]
addrs = "10.3.0.0/28"
dns = "10.1.0.53"

[connections.rw]
pools = ["rw"]
proposals = ["aes128-sha256-x25519", "aes256gcm16-prfsha384-ecp384"]

[connections.rw.local]
auth = "psk"
id = "gw.test"

[connections.rw.remote]
auth = "psk"

[connections.rw.children.net]
local_ts = ["10.1.0.0/16"]
esp_proposals = ["aes128gcm16", "aes128-sha256"]

[secrets.ike-rw]
secret = "{PSK}"
"""
