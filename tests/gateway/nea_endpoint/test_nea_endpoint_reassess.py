"""Client-initiated re-assessment (remediation done, assess me again) and the gateway's
RFC 4478 AUTH_LIFETIME, in-process on the fake network of test_nea_endpoint_client: over
IKEv2 PT-EAP runs inside IKE_AUTH, so re-assessing is re-authenticating with a new IKE_SA
(make-before-break: the old one is deleted once the new one is up)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon import Gateway, load_config
from gateway.nea_endpoint import EndpointClient, EndpointOptions, EndpointResult
from tests.gateway.nea_endpoint.gateway_proc import PASSWORD, PROFILES
from tests.gateway.nea_endpoint.test_nea_endpoint_client import CL_IP, CONFIG, GW_IP, Net

ALLOW = ipaddress.ip_network("10.3.0.0/24")
ISOLATE = ipaddress.ip_network("10.99.0.0/24")


@pytest.fixture
def rig(cert_factory: Any, tmp_path: Path) -> tuple[Net, Gateway, Path]:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test", "ttls.gw.test"))
    path = tmp_path / "gw.toml"
    path.write_text(CONFIG % {"key": gw.key_path, "ca": ca.cert_path, "cert": gw.chain_path})
    net = Net()
    gateway = Gateway(load_config(path), net, config_path=path)
    for port, proto in gateway.udp.ports.items():
        net.attach(GW_IP, port, proto)
    return net, gateway, Path(ca.cert_path)


def _client(
    net: Net, ca: Path, profile: Path, seen: list[EndpointResult], closed: list[str]
) -> EndpointClient:
    options = EndpointOptions(
        server=GW_IP, source=CL_IP, id="bob", eap="eap-ttls", password=PASSWORD, ca=(ca,),
        server_id="ttls.gw.test", profile=profile, timeout=10,
    ).check()  # fmt: skip
    return EndpointClient(options, net, on_reassessed=seen.append, on_closed=closed.append)


def _settle(net: Net, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        net.clock.advance(0.01)


def test_isolated_endpoint_fixed_and_reassessed_is_allowed(
    rig: tuple[Net, Gateway, Path], tmp_path: Path
) -> None:
    net, gateway, ca = rig
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "outdated-os.toml", profile)
    seen: list[EndpointResult] = []
    closed: list[str] = []
    client = _client(net, ca, profile, seen, closed)
    first = net.run_until(client.connect())
    assert first.outcome == "isolate"
    assert ipaddress.ip_address(first.virtual_ips[0]) in ISOLATE
    (sa,) = gateway.list_sas()
    assert sa["verdict"] == "isolate"

    shutil.copy(PROFILES / "compliant.toml", profile)  # the user updated the OS
    second = net.run_until(client.reauthenticate())
    assert isinstance(second, EndpointResult)
    assert second.outcome == "allow", second.message
    assert ipaddress.ip_address(second.virtual_ips[0]) in ALLOW
    assert second.ike is not None and first.ike is not None
    assert second.ike["spi_i"] != first.ike["spi_i"]
    assert seen == [second] and client.reauthentications == 1
    _settle(net)
    # make-before-break: the isolated IKE_SA is gone, the allowed one stays
    (sa,) = gateway.list_sas()
    assert sa["verdict"] == "allow" and sa["remote_vips"] == list(second.virtual_ips)
    assert client.connected and closed == []
    net.run_until(client.disconnect())
    assert gateway.list_sas() == []


def test_gateway_auth_lifetime_triggers_reauthentication(
    rig: tuple[Net, Gateway, Path], tmp_path: Path
) -> None:
    net, gateway, ca = rig
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "outdated-os.toml", profile)
    seen: list[EndpointResult] = []
    closed: list[str] = []
    client = _client(net, ca, profile, seen, closed)
    assert net.run_until(client.connect()).outcome == "isolate"
    shutil.copy(PROFILES / "compliant.toml", profile)
    asked = gateway.reassess()  # INFORMATIONAL with AUTH_LIFETIME 0
    assert len(asked["reassess"]) == 1
    _settle(net, 5)
    assert [r.outcome for r in seen] == ["allow"], [r.message for r in seen]
    (sa,) = gateway.list_sas()
    assert sa["verdict"] == "allow" and closed == []


def test_failed_reauthentication_keeps_the_old_ike_sa(
    rig: tuple[Net, Gateway, Path], tmp_path: Path
) -> None:
    net, gateway, ca = rig
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "compliant.toml", profile)
    seen: list[EndpointResult] = []
    closed: list[str] = []
    client = _client(net, ca, profile, seen, closed)
    first = net.run_until(client.connect())
    assert first.outcome == "allow"
    shutil.copy(PROFILES / "forbidden-port.toml", profile)  # now: no access
    second = net.run_until(client.reauthenticate())
    assert second.outcome == "denied" and second.ike is None
    _settle(net)
    (sa,) = gateway.list_sas()
    assert sa["verdict"] == "allow"  # the old IKE_SA is still up (the gateway's to delete)
    assert client.connected and closed == []
    assert client.local_port != 0  # the socket stays open
    net.run_until(client.disconnect())
    assert gateway.list_sas() == []


def test_reauthenticate_needs_a_connection(rig: tuple[Net, Gateway, Path]) -> None:
    net, _, ca = rig
    client = _client(net, ca, PROFILES / "compliant.toml", [], [])
    failures: list[Any] = []
    client.reauthenticate().addErrback(failures.append)
    assert failures and "not connected" in failures[0].getErrorMessage()


def test_bad_profile_on_reassessment_is_an_error_result(
    rig: tuple[Net, Gateway, Path], tmp_path: Path
) -> None:
    net, gateway, ca = rig
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "compliant.toml", profile)
    client = _client(net, ca, profile, [], [])
    assert net.run_until(client.connect()).outcome == "allow"
    profile.write_text("this is [not toml")
    r = net.run_until(client.reauthenticate())
    assert r.outcome == "error" and "--profile" in r.message
    assert client.connected and len(gateway.list_sas()) == 1


def test_auth_lifetime_is_honoured_before_it_runs_out(
    rig: tuple[Net, Gateway, Path], tmp_path: Path
) -> None:
    net, gateway, ca = rig
    seen: list[EndpointResult] = []
    client = _client(net, ca, PROFILES / "compliant.toml", seen, [])
    assert net.run_until(client.connect()).outcome == "allow"
    (spi,) = gateway.sas
    gateway.engine.request_reauth(spi, gateway.now(), 100)  # RFC 4478: within 100 s
    gateway.udp.flush()
    for _ in range(88):  # (each network hop takes one advance: 1 ms after the call)
        net.clock.advance(1.0)
    assert seen == [] and client._reauth_timer is not None  # at 90 s: 100 less a tenth
    for _ in range(2):
        net.clock.advance(1.0)
    _settle(net, 3)
    assert [r.outcome for r in seen] == ["allow"]
    (new_spi,) = gateway.sas
    assert new_spi != spi
