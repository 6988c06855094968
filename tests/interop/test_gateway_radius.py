"""``nea-gateway run`` with a ``[radius]`` section answers wpa_supplicant's eapol_test on
loopback: EAP-MD5 and EAP-TTLS (inner MS-CHAPv2) accept, a wrong password is rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.daemon.test_daemon_control_cli import Daemon, _free_udp_ports
from tests.harness.eapol_test import run_eapol_test
from tests.harness.tools import require

pytestmark = [pytest.mark.slow]

SECRET = "radius-loopback-secret"


@pytest.fixture
def daemon(tmp_path: Path, cert_factory: Any) -> Any:
    require("eapol_test")
    ca = cert_factory.ca("ca")
    server = cert_factory.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    ike = _free_udp_ports(2)
    auth, acct = _free_udp_ports(2)
    config = f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {ike[0]}
port_nat_t = {ike[1]}
[control]
socket = "ctl.sock"
[radius]
listen = "127.0.0.1"
auth_port = {auth}
acct_port = {acct}
methods = ["md5", "ttls"]
inner_methods = ["mschapv2"]
certs = ["{server.chain_path}"]
[[radius.clients]]
address = "127.0.0.1"
secret = "{SECRET}"
[secrets.eap-bob]
id = "bob"
secret = "hello"
[secrets.private-radius]
file = "{server.key_path}"
[nea]
database = false
"""
    d = Daemon(tmp_path, "gw", config)
    d.start()
    d.radius_port = auth  # type: ignore[attr-defined]
    d.ca = ca  # type: ignore[attr-defined]
    yield d
    d.stop()


def _run(daemon: Any, tmp_path: Path, block: str, *, keys: bool = True) -> Any:
    return run_eapol_test(
        block,
        port=daemon.radius_port,
        secret=SECRET,
        workdir=tmp_path / "eapol",
        timeout=20,
        extra_args=() if keys else ("-n",),  # -n: MD5 exports no MSK to compare
    )


def test_md5_accept_and_reject(daemon: Any, tmp_path: Path) -> None:
    ok = _run(daemon, tmp_path, 'eap=MD5\nidentity="bob"\npassword="hello"', keys=False)
    assert ok.success, ok.output[-3000:]
    bad = _run(daemon, tmp_path, 'eap=MD5\nidentity="bob"\npassword="nope"', keys=False)
    assert not bad.success
    assert "RADIUS listening on 127.0.0.1" in daemon.log.read_text()


def test_ttls_mschapv2(daemon: Any, tmp_path: Path) -> None:
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(daemon.ca.cert_pem)
    ok = _run(
        daemon,
        tmp_path,
        f'eap=TTLS\nidentity="bob"\npassword="hello"\nphase2="autheap=MSCHAPV2"\n'
        f'ca_cert="{ca_path}"',
    )
    assert ok.success and ok.mppe_ok, ok.output[-3000:]
