"""EndpointClient's sockets as root towards port 500: 500 + 4500 when both are free, one
ephemeral port otherwise.  When 500 binds but 4500 is taken (several clients in one
namespace, or a dataplane client holding 4500) the 500 listener is stopped; Twisted clears
the stopped listener's protocol transport one reactor turn later, so the fallback socket
must not reuse that protocol object (it did: IKE_AUTH was never sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import CannotListenError

from gateway.daemon import Gateway, load_config
from gateway.nea_endpoint import EndpointClient, EndpointOptions, EndpointResult
from tests.gateway.nea_endpoint.gateway_proc import PSK
from tests.gateway.nea_endpoint.test_nea_endpoint_client import (
    CL_IP,
    CONFIG,
    GW_IP,
    FakeUdpPort,
    Net,
)


class TwistedLikePort(FakeUdpPort):
    """stopListening the way twisted.internet.udp.Port does it: the socket goes at once,
    the protocol's doStop (transport = None) one reactor turn later."""

    def stopListening(self) -> None:
        super().stopListening()

        def connection_lost() -> None:
            self.proto.transport = None

        self.net.clock.callLater(0, connection_lost)


class BusyNet(Net):
    """A fake reactor where someone else holds some (host, port)s."""

    def __init__(self, busy: set[tuple[str, int]]) -> None:
        super().__init__()
        self.busy = busy

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> FakeUdpPort:
        if (interface, port) in self.busy or (interface, port) in self.ports:
            err: Any = CannotListenError
            raise err(interface, port, OSError(98, "Address already in use"))
        if port == 0:
            port, self._next = self._next, self._next + 1
        p = TwistedLikePort(self, proto, interface, port)
        self.ports[(interface, port)] = p
        return p


def _rig(net: Net, cert_factory: Any, tmp_path: Path) -> Gateway:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test", "ttls.gw.test"))
    path = tmp_path / "gw.toml"
    path.write_text(CONFIG % {"key": gw.key_path, "ca": ca.cert_path, "cert": gw.chain_path})
    gateway = Gateway(load_config(path), net, config_path=path)
    for port, proto in gateway.udp.ports.items():
        net.attach(GW_IP, port, proto)
    return gateway


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.nea_endpoint.client.os.geteuid", lambda: 0)


@pytest.mark.usefixtures("as_root")
def test_simultaneous_clients_with_4500_taken_all_complete(
    cert_factory: Any, tmp_path: Path
) -> None:
    net = BusyNet({(CL_IP, 4500)})
    gateway = _rig(net, cert_factory, tmp_path)
    options = EndpointOptions(
        server=GW_IP, source=CL_IP, id="psk-client", eap=None, psk=PSK, timeout=5
    ).check()
    clients = [EndpointClient(options, net) for _ in range(4)]
    results: list[Any] = []
    for client in clients:
        client.connect().addBoth(results.append)
    for _ in range(2000):
        if len(results) == len(clients):
            break
        net.clock.advance(0.005)
    assert len(results) == len(clients)
    assert all(isinstance(r, EndpointResult) for r in results), results
    assert [r.outcome for r in results] == ["allow"] * 4, [r.message for r in results]
    assert len(gateway.list_sas()) == 4
    # each on its own ephemeral port; none kept 500 (it was given back)
    ports = sorted(c.local_port for c in clients)
    assert len(set(ports)) == 4 and 500 not in ports
    assert (CL_IP, 500) not in net.ports


@pytest.mark.usefixtures("as_root")
def test_both_ports_free_binds_500_and_4500(cert_factory: Any, tmp_path: Path) -> None:
    net = BusyNet(set())
    _rig(net, cert_factory, tmp_path)
    options = EndpointOptions(
        server=GW_IP, source=CL_IP, id="psk-client", eap=None, psk=PSK, timeout=5
    ).check()
    client = EndpointClient(options, net)
    result = net.run_until(client.connect())
    assert result.outcome == "allow" and client.local_port == 500
    assert {(CL_IP, 500), (CL_IP, 4500)} <= set(net.ports)
