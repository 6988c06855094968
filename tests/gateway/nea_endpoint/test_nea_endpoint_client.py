"""EndpointClient in-process against an in-process nea-gateway (``gateway.daemon.Gateway``) on
a fake clock and fake UDP ports: every outcome and its exit code in milliseconds, no sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.daemon import Gateway, load_config
from gateway.nea_endpoint import EndpointClient, EndpointOptions, EndpointResult
from tests.gateway.nea_endpoint.gateway_proc import PASSWORD, POLICY, PROFILES, PSK

GW_IP, CL_IP = "192.0.2.1", "192.0.2.2"


class FakeUdpPort:
    """What ``reactor.listenUDP`` returns, wired to the other side through the clock."""

    def __init__(self, net: Net, proto: Any, host: str, port: int) -> None:
        self.net, self.proto, self.host, self.port = net, proto, host, port
        self.closed = False
        proto.transport = self

    def getHost(self) -> Any:
        return type("Addr", (), {"host": self.host, "port": self.port})()

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.closed:
            self.net.send(data, (self.host, self.port), addr)

    def stopListening(self) -> None:
        self.closed = True
        self.net.ports.pop((self.host, self.port), None)


class Net:
    """A fake reactor: a Clock plus UDP ports that deliver to each other (after 1 ms)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.ports: dict[tuple[str, int], FakeUdpPort] = {}
        self.drop: Callable[[bytes], bool] = lambda data: False
        self._next = 40000

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *a, **kw)

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> FakeUdpPort:
        if port == 0:
            port, self._next = self._next, self._next + 1
        p = FakeUdpPort(self, proto, interface, port)
        self.ports[(interface, port)] = p
        return p

    def attach(self, host: str, port: int, proto: Any) -> None:
        self.ports[(host, port)] = FakeUdpPort(self, proto, host, port)

    def send(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        if self.drop(data):
            return

        def deliver() -> None:
            p = self.ports.get(dst)
            if p is not None:
                p.proto.datagramReceived(data, src)

        self.clock.callLater(0.001, deliver)

    def run_until(self, d: Any, limit: float = 60.0) -> Any:
        out: list[Any] = []
        d.addBoth(out.append)
        while not out and self.clock.seconds() < limit:
            calls: list[Any] = list(self.clock.getDelayedCalls())
            if not calls:
                break
            first = min(float(c.getTime()) for c in calls)
            self.clock.advance(max(0.0, first - self.clock.seconds()))
        assert out, "no result"
        return out[0]


CONFIG = f"""
dataplane = "none"
[ike]
listen = "{GW_IP}"
port = 500
port_nat_t = 4500
[control]
socket = "ctl.sock"
[pools.allow]
addrs = "10.3.0.0/24"
[pools.isolate]
addrs = "10.99.0.0/24"
[secrets.eap-bob]
id = "bob"
secret = "{PASSWORD}"
[secrets.ike-psk]
secret = "{PSK}"
[secrets.private-gw]
file = "%(key)s"
[authorities.ca]
cacert = "%(ca)s"
[nea]
policy = "{POLICY}"
database = false
[connections.psk]
pools = ["allow"]
[connections.psk.local]
auth = "psk"
id = "gw.test"
[connections.psk.remote]
auth = "psk"
id = "psk-client"
[connections.psk.children.net]
local_ts = ["10.1.0.0/16"]
[connections.ttls]
pools = ["allow"]
[connections.ttls.local]
auth = "pubkey"
certs = ["%(cert)s"]
id = "ttls.gw.test"
[connections.ttls.remote]
auth = "eap-ttls"
eap_inner = ["mschapv2"]
[connections.ttls.posture]
assess = true
[connections.ttls.children.allow]
local_ts = ["10.1.0.0/16"]
verdict = ["allow"]
[connections.ttls.children.isolate]
local_ts = ["10.99.255.0/24"]
verdict = ["isolate"]
pools = ["isolate"]
"""


@pytest.fixture
def rig(cert_factory: Any, tmp_path: Path) -> tuple[Net, Gateway, Path]:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(
        ca, "gw.test", san_dns=("gw.test", "ttls.gw.test"), eku=("serverAuth",)
    )
    path = tmp_path / "gw.toml"
    path.write_text(CONFIG % {"key": gw.key_path, "ca": ca.cert_path, "cert": gw.chain_path})
    net = Net()
    gateway = Gateway(load_config(path), net, config_path=path)
    for port, proto in gateway.udp.ports.items():
        net.attach(GW_IP, port, proto)
    return net, gateway, Path(ca.cert_path)


def _connect(net: Net, **kw: Any) -> tuple[EndpointClient, EndpointResult]:
    options = EndpointOptions(server=GW_IP, source=CL_IP, **kw).check()
    client = EndpointClient(options, net)
    result = net.run_until(client.connect())
    assert isinstance(result, EndpointResult), result
    return client, result


def _posture(net: Net, ca: Path, profile: str, password: str = PASSWORD) -> EndpointResult:
    _, result = _connect(
        net, id="bob", eap="eap-ttls", password=password, ca=(ca,),
        server_id="ttls.gw.test", profile=PROFILES / f"{profile}.toml", timeout=10,
    )
    return result


@pytest.mark.parametrize(
    ("profile", "outcome", "code", "pool"),
    [
        ("compliant", "allow", 0, "10.3.0.0/24"),
        ("outdated-os", "isolate", 3, "10.99.0.0/24"),
        ("forbidden-port", "denied", 4, None),
    ],
)
def test_posture_outcomes(
    rig: tuple[Net, Gateway, Path], profile: str, outcome: str, code: int, pool: str | None
) -> None:
    net, gateway, ca = rig
    r = _posture(net, ca, profile)
    assert (r.outcome, r.exit_code) == (outcome, code), r.message
    assert r.posture_ran and r.posture is not None
    if pool is None:
        assert r.virtual_ips == () and r.ike is None
        assert r.verdict == "no access" and r.error == "AUTHENTICATION_FAILED"
        assert r.posture.reasons == (("en", "open forbidden ports: tcp/23"),)
    else:
        (vip,) = r.virtual_ips
        assert ipaddress.ip_address(vip) in ipaddress.ip_network(pool)
        (sa,) = gateway.list_sas()
        assert sa["verdict"] == outcome and sa["remote_vips"] == [vip]
    doc = r.to_json()
    assert doc["outcome"] == outcome and doc["exit_code"] == code


def test_outdated_os_remediation_reaches_the_endpoint(rig: tuple[Net, Gateway, Path]) -> None:
    net, _, ca = rig
    r = _posture(net, ca, "outdated-os")
    assert r.posture is not None and r.posture.remediation
    texts = [x.text or x.uri for x in r.posture.remediation]
    assert len(texts) == len(set(texts)), "duplicates are folded"


def test_wrong_password_is_auth_failed(rig: tuple[Net, Gateway, Path]) -> None:
    net, _, ca = rig
    r = _posture(net, ca, "compliant", password="nope")
    assert (r.outcome, r.exit_code, r.posture_ran) == ("auth-failed", 4, False)


def test_psk_then_disconnect_deletes_the_sa(rig: tuple[Net, Gateway, Path]) -> None:
    net, gateway, _ = rig
    client, r = _connect(net, id="psk-client", eap=None, psk=PSK)
    assert (r.outcome, r.verdict) == ("allow", "not assessed")
    assert r.children[0].remote_ts == ("10.1.0.0/16",)
    assert len(gateway.list_sas()) == 1
    net.run_until(client.disconnect())
    assert gateway.list_sas() == []
    assert not [k for k in net.ports if k[0] == CL_IP]


def test_gateway_terminating_calls_on_closed(rig: tuple[Net, Gateway, Path]) -> None:
    net, gateway, _ = rig
    closed: list[str] = []
    options = EndpointOptions(server=GW_IP, source=CL_IP, id="psk-client", eap=None, psk=PSK)
    client = EndpointClient(options.check(), net, on_closed=closed.append)
    net.run_until(client.connect())
    (sa,) = gateway.list_sas()
    gateway.terminate(sa["name"])
    for _ in range(50):
        net.clock.advance(0.01)
    assert closed and not [k for k in net.ports if k[0] == CL_IP]


def test_no_answer_times_out(rig: tuple[Net, Gateway, Path]) -> None:
    net, _, _ = rig
    net.drop = lambda data: True
    _, r = _connect(net, id="psk-client", eap=None, psk=PSK, timeout=3)
    assert (r.outcome, r.exit_code) == ("error", 1)
    assert "no answer from 192.0.2.1:500 within 3 s" in r.message


def test_this_host_is_assessed_without_a_profile(rig: tuple[Net, Gateway, Path]) -> None:
    """No --profile: the collectors read this machine (os-release, dpkg, /proc); whatever the
    policy makes of it, the assessment ran and its verdict is what the endpoint reports."""
    net, gateway, ca = rig
    _, r = _connect(
        net, id="bob", eap="eap-ttls", password=PASSWORD, ca=(ca,),
        server_id="ttls.gw.test", timeout=10,
    )
    assert r.posture_ran and r.posture is not None and r.posture.access is not None
    assert r.outcome in ("allow", "isolate", "denied")
    assert r.verdict == {"allow": "allow", "isolate": "isolate", "denied": "no access"}[r.outcome]
    if r.outcome != "denied":
        (sa,) = gateway.list_sas()
        assert sa["verdict"] == r.outcome
