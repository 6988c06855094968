"""gateway.ike_udp on ports other than 500/4500: RFC 3948 framing on the engine's NAT-T
port, initiation from the bound port, and an initiator behind a NAT moving to a gateway's
NAT-T port 14500 (fake transports, Twisted's Clock)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from gateway.ike_udp import IkePort, IkeUdpService
from ike.config import EngineConfig
from ike.constants import NON_ESP_MARKER
from ike.sa import ChildSaInstalled, IkeEngine, IkeSaEstablished
from tests.ike.ikev2.ike_pair import cl_peer, gw_peer

GW = "192.0.2.1"
PRIVATE = "10.0.0.2"
PUBLIC = "198.51.100.7"


class FakeUdp:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))


def _service(
    engine: IkeEngine, host: str, ports: tuple[int, ...], events: list[Any]
) -> tuple[IkeUdpService, dict[int, FakeUdp]]:
    svc = IkeUdpService(engine, Clock(), host, events.append, ports=ports)
    transports: dict[int, FakeUdp] = {}
    for port, proto in svc.ports.items():
        transports[port] = FakeUdp()
        proto.makeConnection(transports[port])  # type: ignore[arg-type]
    return svc, transports


def test_initiate_uses_the_bound_port() -> None:
    # like nea-endpoint: ask for an ephemeral port, then re-key by the bound number
    svc = IkeUdpService(
        IkeEngine(EngineConfig(peers=(cl_peer(),))), Clock(), "192.0.2.2", ports=(0,)
    )
    proto = svc.ports.pop(0)
    proto.port = 40000
    svc.ports = {40000: proto}
    transport = FakeUdp()
    proto.makeConnection(transport)  # type: ignore[arg-type]
    spi = svc.initiate("home", (GW, 500))
    ((data, addr),) = transport.written
    assert addr == (GW, 500) and data[:4] != NON_ESP_MARKER
    assert svc.engine._sas[spi].local == ("192.0.2.2", 40000)  # hashed into NAT detection


def test_natt_framing_follows_the_engine_port() -> None:
    engine = IkeEngine(EngineConfig(peers=(gw_peer(),), natt_port=14500))
    svc, t = _service(engine, GW, (10500, 14500), [])
    assert svc.natt_port == 14500
    svc.ports[14500].send(b"x" * 28, (PUBLIC, 40002))
    svc.ports[10500].send(b"y" * 28, (PUBLIC, 40001))
    assert t[14500].written == [(NON_ESP_MARKER + b"x" * 28, (PUBLIC, 40002))]
    assert t[10500].written == [(b"y" * 28, (PUBLIC, 40001))]
    svc.ports[14500].datagramReceived(b"\xff", (PUBLIC, 40002))
    assert svc.stats["keepalives_received"] == 1


def test_initiator_behind_a_nat_moves_to_the_gateways_natt_port() -> None:
    cev: list[Any] = []
    sev: list[Any] = []
    client, ct = _service(
        IkeEngine(EngineConfig(peers=(cl_peer(remote_natt_port=14500),), natt_port=14600)),
        PRIVATE,
        (10600, 14600),
        cev,
    )
    server, st = _service(
        IkeEngine(EngineConfig(peers=(gw_peer(),), natt_port=14500)), GW, (10500, 14500), sev
    )
    nat = {10600: 40001, 14600: 40002}  # client port -> public port the server sees
    back = {v: k for k, v in nat.items()}
    client.initiate("home", (GW, 10500))
    seen: list[tuple[int, int, bool]] = []  # (client port, gateway port, marker)
    for _ in range(20):
        busy = False
        for cport, tr in ct.items():
            while tr.written:
                data, (_host, gport) = tr.written.pop(0)
                busy = True
                seen.append((cport, gport, data[:4] == NON_ESP_MARKER))
                server.ports[gport].datagramReceived(data, (PUBLIC, nat[cport]))
        for gport, tr in st.items():
            while tr.written:
                data, (_host, pport) = tr.written.pop(0)
                busy = True
                client.ports[back[pport]].datagramReceived(data, (GW, gport))
        if not busy:
            break
    assert seen[0] == (10600, 10500, False)  # IKE_SA_INIT on the IKE ports
    assert seen[1:] and all(s == (14600, 14500, True) for s in seen[1:])
    (cest,) = [e for e in cev if isinstance(e, IkeSaEstablished)]
    (sest,) = [e for e in sev if isinstance(e, IkeSaEstablished)]
    assert cest.nat_detected and cest.remote == (GW, 14500)
    assert sest.local == (GW, 14500) and sest.remote == (PUBLIC, 40002)
    assert all(c.udp_encap for c in cev + sev if isinstance(c, ChildSaInstalled))
    assert isinstance(client.ports[14600], IkePort)
