"""Two IKE engines wired back to back with a fake clock (aioquic's client_and_server idea)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from ike.config import (
    AuthClass,
    ChildConfig,
    EngineConfig,
    Identity,
    IkeProposal,
    PeerConfig,
)
from ike.payloads import IpAddress
from ike.sa import Datagram, Event, IkeEngine

GW = ("192.0.2.1", 500)
CL = ("192.0.2.2", 500)
PSK = b"correct horse battery staple"


class MemoryPool:
    def __init__(self, net: str = "10.3.0.0/28") -> None:
        self.free = list(ipaddress.ip_network(net).hosts())
        self.leases: dict[Identity, IpAddress] = {}
        self.released: list[IpAddress] = []

    def acquire(
        self, identity: Identity, requested: IpAddress | None, version: int
    ) -> IpAddress | None:
        if version != 4 or not self.free:
            return None
        addr = self.free.pop(0)
        self.leases[identity] = addr
        return addr

    def release(self, identity: Identity, address: IpAddress) -> None:
        self.released.append(address)
        self.leases.pop(identity, None)


def gw_peer(**kw: object) -> PeerConfig:
    base: dict[str, object] = dict(
        name="gw",
        local_id=Identity.parse("gw.test"),
        remote_id=None,
        psk=PSK,
        children=(ChildConfig.make("net", local_ts=["10.1.0.0/16"]),),
    )
    base.update(kw)
    return PeerConfig(**base)  # type: ignore[arg-type]


def cl_peer(**kw: object) -> PeerConfig:
    base: dict[str, object] = dict(
        name="home",
        local_id=Identity.parse("cl.test"),
        remote_id=Identity.parse("gw.test"),
        psk=PSK,
        children=(ChildConfig.make("home", remote_ts=["10.1.0.0/16"]),),
    )
    base.update(kw)
    return PeerConfig(**base)  # type: ignore[arg-type]


@dataclass
class Pair:
    client: IkeEngine
    server: IkeEngine
    now: float = 0.0
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    wire: list[tuple[str, Datagram]] = field(default_factory=list)
    drop: Callable[[str, Datagram], bool] | None = None
    mangle: Callable[[str, Datagram], bytes] | None = None
    nat: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    """Client address -> public address the server sees (a NAT in front of the client)."""

    def initiate(self, name: str = "home") -> bytes:
        return self.client.initiate(name, self.now, local=CL, remote=GW)

    def pump(self, max_rounds: int = 50) -> int:
        """Move datagrams until both sides are quiet; returns how many moved."""
        moved = 0
        for _ in range(max_rounds):
            busy = False
            for name, src, dst in (
                ("c>s", self.client, self.server),
                ("s>c", self.server, self.client),
            ):
                for d in src.datagrams_to_send(self.now):
                    busy = True
                    self.wire.append((name, d))
                    if self.drop is not None and self.drop(name, d):
                        continue
                    data = self.mangle(name, d) if self.mangle else d.data
                    moved += 1
                    back = {v: k for k, v in self.nat.items()}
                    if name == "c>s":
                        src, local = self.nat.get(d.local, d.local), d.remote
                    else:
                        src, local = d.local, back.get(d.remote, d.remote)
                    dst.receive_datagram(data, src, self.now, local=local)
            self.collect()
            if not busy:
                break
        return moved

    def collect(self) -> None:
        for eng, out in ((self.client, self.client_events), (self.server, self.server_events)):
            while (ev := eng.next_event()) is not None:
                out.append(ev)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for eng in (self.client, self.server):
            t = eng.get_timer()
            if t is not None and t <= self.now:
                eng.handle_timer(self.now)
        self.collect()

    def events(self, side: str, cls: type) -> list:  # type: ignore[type-arg]
        evs = self.client_events if side == "client" else self.server_events
        return [e for e in evs if isinstance(e, cls)]


def make_pair(
    client_peers: tuple[PeerConfig, ...] = (),
    server_peers: tuple[PeerConfig, ...] = (),
    **server_cfg: object,
) -> Pair:
    client = IkeEngine(EngineConfig(peers=client_peers or (cl_peer(),)))
    server = IkeEngine(EngineConfig(peers=server_peers or (gw_peer(),), **server_cfg))  # type: ignore[arg-type]
    return Pair(client, server)


__all__ = [
    "CL",
    "GW",
    "PSK",
    "AuthClass",
    "IkeProposal",
    "MemoryPool",
    "Pair",
    "cl_peer",
    "gw_peer",
    "make_pair",
]
