"""gateway.ike_udp with a fake UDP transport and Twisted's Clock: the non-ESP marker on 4500,
NAT keepalives, ESP hand-off, the single engine timer and event delivery."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from gateway.ike_udp import IkeUdpService
from ike.config import EngineConfig
from ike.constants import NON_ESP_MARKER
from ike.message import decode_message
from ike.sa import IkeEngine, IkeSaClosed, IkeSaEstablished
from tests.ike.ikev2.ike_pair import cl_peer, gw_peer


class FakeUdp:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.written.append((data, addr))


def _service(
    peers: Any, host: str, events: list[Any], esp: list[Any] | None = None
) -> tuple[IkeUdpService, Clock, dict[int, FakeUdp]]:
    clock = Clock()
    svc = IkeUdpService(
        IkeEngine(EngineConfig(peers=peers)),
        clock,
        host,
        events.append,
        (lambda d, r, loc: esp.append((d, r, loc))) if esp is not None else None,
    )
    transports = {}
    for port, proto in svc.ports.items():
        transports[port] = FakeUdp()
        proto.makeConnection(transports[port])  # type: ignore[arg-type]
    return svc, clock, transports


def _shuttle(
    a: tuple[IkeUdpService, dict[int, FakeUdp]], b: tuple[IkeUdpService, dict[int, FakeUdp]]
) -> int:
    moved = 0
    for _ in range(20):
        busy = False
        for (src, tsrc), (dst, _) in ((a, b), (b, a)):
            for port, t in tsrc.items():
                while t.written:
                    data, addr = t.written.pop(0)
                    busy = True
                    moved += 1
                    dst.ports[addr[1]].datagramReceived(data, (src.host, port))
        if not busy:
            break
    return moved


def test_back_to_back_through_the_adapter() -> None:
    ev_c: list[Any] = []
    ev_s: list[Any] = []
    client, _cclock, ct = _service((cl_peer(),), "192.0.2.2", ev_c)
    server, _sclock, st = _service((gw_peer(),), "192.0.2.1", ev_s)
    client.initiate("home", ("192.0.2.1", 500))
    assert ct[500].written and not ct[4500].written
    assert _shuttle((client, ct), (server, st)) == 4
    assert any(isinstance(e, IkeSaEstablished) for e in ev_c)
    assert any(isinstance(e, IkeSaEstablished) for e in ev_s)


def test_marker_keepalive_and_esp_on_4500() -> None:
    events: list[Any] = []
    esp: list[Any] = []
    svc, _clock, t = _service((gw_peer(),), "192.0.2.1", events, esp)
    port = svc.ports[4500]
    port.datagramReceived(b"\xff", ("192.0.2.2", 4500))  # keepalive: nothing happens
    port.datagramReceived(b"\x00\x00\x10\x01" + b"esp-payload", ("192.0.2.2", 4500))
    assert esp == [(b"\x00\x00\x10\x01esp-payload", ("192.0.2.2", 4500), ("192.0.2.1", 4500))]
    # an IKE_SA_INIT behind the marker reaches the engine; the answer carries the marker too
    peer_engine = IkeEngine(EngineConfig(peers=(cl_peer(),)))
    peer_engine.initiate("home", 0.0, local=("192.0.2.2", 4500), remote=("192.0.2.1", 4500))
    (init,) = peer_engine.datagrams_to_send(0.0)
    port.datagramReceived(NON_ESP_MARKER + init.data, ("192.0.2.2", 4500))
    ((reply, addr),) = t[4500].written
    assert reply[:4] == NON_ESP_MARKER and addr == ("192.0.2.2", 4500)
    assert decode_message(reply[4:]).is_response
    assert not t[500].written


def test_engine_timer_drives_retransmits_and_expiry() -> None:
    events: list[Any] = []
    svc, clock, t = _service((cl_peer(),), "192.0.2.2", events)
    svc.initiate("home", ("192.0.2.1", 500))
    assert len(t[500].written) == 1
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(4.0)
    assert len(t[500].written) == 2 and t[500].written[0][0] == t[500].written[1][0]
    for n in range(1, 6):  # charon's schedule: 4 s * 1.8^n
        clock.advance(4.0 * 1.8**n + 1e-6)
    assert len(t[500].written) == 6
    assert any(isinstance(e, IkeSaClosed) for e in events)
    assert not [c for c in clock.getDelayedCalls() if c.active()]


def test_outgoing_nat_keepalive_has_no_marker() -> None:
    from ike.sa import NAT_KEEPALIVE

    svc, _clock, t = _service((cl_peer(),), "10.0.0.2", [])
    svc.ports[4500].send(NAT_KEEPALIVE, ("192.0.2.1", 4500))
    svc.ports[4500].send(b"x" * 28, ("192.0.2.1", 4500))
    assert t[4500].written[0] == (b"\xff", ("192.0.2.1", 4500))
    assert t[4500].written[1][0] == NON_ESP_MARKER + b"x" * 28
