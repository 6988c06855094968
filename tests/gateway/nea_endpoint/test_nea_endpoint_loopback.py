"""nea-endpoint --once against a real nea-gateway daemon on loopback (both subprocesses):
the verdict of each example profile reaches the endpoint, with its exit status, virtual IP
from the right pool, reasons and remediation; PSK, EAP-MD5, EAP-TLS, PEAP; wrong password."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import (
    NAMES,
    PASSWORD,
    PROFILES,
    PSK,
    GatewayProcess,
    run_endpoint,
    start_gateway,
)
from tests.harness.certs import CertFactory

pytestmark = pytest.mark.slow

ALLOW_NET = ipaddress.ip_network("10.3.0.0/24")
ISOLATE_NET = ipaddress.ip_network("10.99.0.0/24")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    f = CertFactory(tmp_path_factory.mktemp("pki"))
    ca = f.ca("ca")
    gw = f.issue(ca, "gw.test", san_dns=NAMES, eku=("serverAuth",))
    alice = f.issue(ca, "alice", san_email=("alice@example.test",), eku=("clientAuth",))
    return ca, gw, alice


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pki: tuple[Any, Any, Any]
) -> Iterator[GatewayProcess]:
    ca, gw, _ = pki
    g = start_gateway(tmp_path_factory.mktemp("gw"), ca, gw)
    try:
        yield g
    finally:
        g.stop()
        print(g.log()[-3000:])


def _run(gateway: GatewayProcess, *args: str) -> tuple[int, dict[str, Any]]:
    r = run_endpoint(
        "--server", f"127.0.0.1:{gateway.port}", "--once", "--json", "--timeout", "20", *args
    )
    assert r.stdout, f"no output (rc {r.returncode}): {r.stderr}"
    return r.returncode, json.loads(r.stdout)


def _posture(gateway: GatewayProcess, method: str, profile: str) -> tuple[int, dict[str, Any]]:
    return _run(
        gateway,
        "--id",
        "bob",
        "--password",
        PASSWORD,
        "--ca",
        str(gateway.ca_path),
        "--eap",
        method,
        "--server-id",
        f"{method.removeprefix('eap-')}.gw.test",
        "--profile",
        str(PROFILES / f"{profile}.toml"),
    )


@pytest.mark.parametrize(
    ("profile", "outcome", "rc", "net"),
    [
        ("compliant", "allow", 0, ALLOW_NET),
        ("forwarding", "isolate", 3, ISOLATE_NET),
        ("forbidden-package", "isolate", 3, ISOLATE_NET),
        ("outdated-os", "isolate", 3, ISOLATE_NET),
    ],
)
def test_ttls_posture_verdicts(
    gateway: GatewayProcess, profile: str, outcome: str, rc: int, net: Any
) -> None:
    code, res = _posture(gateway, "eap-ttls", profile)
    assert (code, res["outcome"], res["exit_code"]) == (rc, outcome, rc), res
    assert res["verdict"] == {"allow": "allow", "isolate": "isolate"}[outcome]
    (vip,) = res["virtual_ips"]
    assert ipaddress.ip_address(vip) in net
    (child,) = res["children"]
    assert child["name"] == "home"
    assert child["local_ts"] == [f"{vip}/32"]
    expected_remote = "10.1.0.0/16" if outcome == "allow" else "10.99.255.0/24"
    assert child["remote_ts"] == [expected_remote]
    assert res["ike"]["remote_id"] == "ttls.gw.test"
    posture = res["posture"]
    assert posture["recommendation"] == {"allow": "allowed", "isolate": "quarantined"}[outcome]
    if outcome == "isolate":
        assert posture["reasons"] and posture["remediation"]
    else:
        assert posture["reasons"] == [] and posture["remediation"] == []


def test_ttls_forwarding_reason_and_remediation(gateway: GatewayProcess) -> None:
    _, res = _posture(gateway, "eap-ttls", "forwarding")
    texts = [r["text"] for r in res["posture"]["remediation"]]
    assert texts == ["Disable IP forwarding: sysctl -w net.ipv4.ip_forward=0"]
    assert {"language": "en", "text": "IP forwarding is enabled"} in res["posture"]["reasons"]


def test_ttls_forbidden_port_is_denied(gateway: GatewayProcess) -> None:
    code, res = _posture(gateway, "eap-ttls", "forbidden-port")
    assert (code, res["outcome"], res["verdict"]) == (4, "denied", "no access"), res
    assert res["ike"] is None and res["virtual_ips"] == []
    assert res["posture"]["recommendation"] == "denied"
    assert res["posture"]["reasons"] == [{"language": "en", "text": "open forbidden ports: tcp/23"}]
    assert [r["text"] for r in res["posture"]["remediation"]] == ["Stop the telnet server"]


@pytest.mark.parametrize(("profile", "rc"), [("forwarding", 3), ("forbidden-port", 4)])
def test_peap_posture(gateway: GatewayProcess, profile: str, rc: int) -> None:
    code, res = _posture(gateway, "eap-peap", profile)
    assert code == rc, res
    assert res["auth"] == "eap-peap" and res["posture"] is not None


@pytest.mark.parametrize(("profile", "rc"), [("compliant", 0), ("outdated-os", 3)])
def test_fast_posture(gateway: GatewayProcess, profile: str, rc: int) -> None:
    from tests.gateway.nea_endpoint.gateway_proc import fast_supported

    # The daemon offers EAP-FAST in IKEv2; losing it is a failure, not a skip.
    assert fast_supported(), "nea-gateway no longer accepts eap-fast connections"
    code, res = _posture(gateway, "eap-fast", profile)
    assert code == rc, res
    assert res["auth"] == "eap-fast" and res["posture"]["recommendation"] in (
        "allowed", "quarantined"
    )


def test_psk(gateway: GatewayProcess) -> None:
    code, res = _run(gateway, "--id", "psk-client", "--psk", PSK)
    assert (code, res["outcome"], res["verdict"]) == (0, "allow", "not assessed"), res
    assert ipaddress.ip_address(res["virtual_ips"][0]) in ALLOW_NET


def test_wrong_psk_is_auth_failed(gateway: GatewayProcess) -> None:
    code, res = _run(gateway, "--id", "psk-client", "--psk", "not-it")
    assert (code, res["outcome"]) == (4, "auth-failed"), res


def test_eap_md5(gateway: GatewayProcess) -> None:
    code, res = _run(
        gateway,
        "--id",
        "bob",
        "--password",
        PASSWORD,
        "--eap",
        "eap-md5",
        "--ca",
        str(gateway.ca_path),
        "--server-id",
        "md5.gw.test",
    )
    assert (code, res["outcome"]) == (0, "allow"), res
    assert res["ike"]["eap_identity"] is None or res["ike"]["eap_identity"] == "bob"


def test_eap_md5_wrong_password(gateway: GatewayProcess) -> None:
    code, res = _run(
        gateway,
        "--id",
        "bob",
        "--password",
        "wrong",
        "--eap",
        "eap-md5",
        "--ca",
        str(gateway.ca_path),
        "--server-id",
        "md5.gw.test",
    )
    assert (code, res["outcome"]) == (4, "auth-failed"), res
    assert res["virtual_ips"] == []


def test_eap_tls(gateway: GatewayProcess, pki: tuple[Any, Any, Any]) -> None:
    _, _, alice = pki
    code, res = _run(
        gateway,
        "--id",
        "alice@example.test",
        "--eap",
        "eap-tls",
        "--cert",
        str(alice.cert_path),
        "--key",
        str(alice.key_path),
        "--ca",
        str(gateway.ca_path),
        "--server-id",
        "tls.gw.test",
    )
    assert (code, res["outcome"], res["verdict"]) == (0, "allow", "not assessed"), res


def test_rich_output_shows_verdict_and_remediation(gateway: GatewayProcess) -> None:
    r = run_endpoint(
        "--server",
        f"127.0.0.1:{gateway.port}",
        "--once",
        "--id",
        "bob",
        "--password",
        PASSWORD,
        "--ca",
        str(gateway.ca_path),
        "--server-id",
        "ttls.gw.test",
        "--profile",
        str(PROFILES / "forwarding.toml"),
    )
    assert r.returncode == 3, r.stderr
    assert "ISOLATE" in r.stdout and "Disable IP forwarding" in r.stdout
    assert "10.99.0." in r.stdout


def test_no_answer_is_error(tmp_path: Path, pki: tuple[Any, Any, Any]) -> None:
    from tests.gateway.nea_endpoint.gateway_proc import free_udp_ports

    (port,) = free_udp_ports(1)
    r = run_endpoint(
        "--server",
        f"127.0.0.1:{port}",
        "--once",
        "--json",
        "--timeout",
        "1.5",
        "--id",
        "psk-client",
        "--psk",
        PSK,
    )
    assert r.returncode == 1
    res = json.loads(r.stdout)
    assert res["outcome"] == "error" and "no answer" in res["message"]


def test_options_from_a_toml_file(gateway: GatewayProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "endpoint.toml"
    cfg.write_text(
        f'server = "127.0.0.1:{gateway.port}"\nid = "bob"\neap = "eap-ttls"\n'
        f'password = "{PASSWORD}"\nca = "{gateway.ca_path}"\nserver-id = "ttls.gw.test"\n'
        f'profile = "{PROFILES / "forwarding.toml"}"\n'
    )
    r = run_endpoint("-c", str(cfg), "--once", "--json")
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["outcome"] == "isolate"
