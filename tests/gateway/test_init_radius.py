"""The ``[radius]`` section ``nea-gateway init --radius-client`` writes answers wpa_supplicant's
eapol_test on loopback: PEAP (cryptobinding) and TTLS with the generated user and secret
(``--no-posture``: eapol_test has no NEA client), EAP-TLS with a client certificate from
init's CA key; a wrong password is rejected.  The written ``gateway.toml`` is run with only
its ports and control socket changed (free loopback ports, no root needed)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.init import main as init_main
from tests.gateway.daemon.test_daemon_control_cli import Daemon, _free_udp_ports
from tests.gateway.test_init_charon import _client_cert
from tests.harness.eapol_test import run_eapol_test
from tests.harness.tools import require

pytestmark = [pytest.mark.slow]


def _daemon_from_init(tmp_path: Path, *extra: str) -> tuple[Daemon, dict[str, Any]]:
    require("eapol_test")
    daemon = Daemon(tmp_path, "gw", "")
    d = daemon.dir
    rc = init_main(
        [
            str(d),
            "--name",
            "radius.test",
            "--listen",
            "127.0.0.1",
            "--radius-client",
            "127.0.0.1/32",
            "--user",
            "bob",
            "--database",
            "none",
            "--no-pool-db",
            *extra,
        ]
    )
    assert rc == 0
    text = (d / "gateway.toml").read_text()
    ike, radius = _free_udp_ports(2), _free_udp_ports(2)
    for old, new in (
        ("port = 500\n", f"port = {ike[0]}\n"),
        ("port_nat_t = 4500\n", f"port_nat_t = {ike[1]}\n"),
        ("auth_port = 1812\n", f"auth_port = {radius[0]}\n"),
        ("acct_port = 1813\n", f"acct_port = {radius[1]}\n"),
        ('socket = "var/nea-gateway.ctl"', 'socket = "ctl.sock"'),
        ('dataplane = "auto"', 'dataplane = "none"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    daemon.config.write_text(text)
    config = tomllib.loads(text)
    config["radius_port"] = radius[0]
    daemon.start()
    return daemon, config


@pytest.fixture
def no_posture(tmp_path: Path) -> Iterator[tuple[Daemon, dict[str, Any]]]:
    daemon, config = _daemon_from_init(tmp_path, "--no-posture")
    yield daemon, config
    daemon.stop()


def _run(daemon: Daemon, config: dict[str, Any], block: str, tmp_path: Path) -> Any:
    return run_eapol_test(
        block,
        port=config["radius_port"],
        secret=config["radius"]["clients"][0]["secret"],
        workdir=tmp_path / "eapol",
        timeout=20,
    )


def test_peap_and_ttls_with_the_generated_user(
    no_posture: tuple[Daemon, dict[str, Any]], tmp_path: Path
) -> None:
    daemon, config = no_posture
    assert config["radius"]["posture"] is False
    password = config["secrets"]["eap-bob"]["secret"]
    ca = daemon.dir / "certs/ca.crt"
    peap = _run(
        daemon,
        config,
        f'eap=PEAP\nidentity="bob"\npassword="{password}"\nca_cert="{ca}"\n'
        'phase1="peapver=0 crypto_binding=2"\nphase2="auth=MSCHAPV2"',
        tmp_path,
    )
    assert peap.success and peap.mppe_ok, peap.output[-3000:]
    ttls = _run(
        daemon,
        config,
        f'eap=TTLS\nidentity="bob"\nanonymous_identity="anonymous"\npassword="{password}"\n'
        f'ca_cert="{ca}"\nphase2="autheap=MSCHAPV2"',
        tmp_path,
    )
    assert ttls.success and ttls.mppe_ok, ttls.output[-3000:]
    wrong = _run(
        daemon,
        config,
        f'eap=PEAP\nidentity="bob"\npassword="wrong"\nca_cert="{ca}"\nphase2="auth=MSCHAPV2"',
        tmp_path,
    )
    assert not wrong.success


def test_eap_tls_with_a_client_certificate_from_inits_ca(tmp_path: Path) -> None:
    daemon, config = _daemon_from_init(tmp_path)  # posture on: EAP-TLS carries none
    try:
        assert config["radius"]["posture"] is True
        cert_pem, key_pem = _client_cert(daemon.dir, "carol@example.test")
        (tmp_path / "carol.crt").write_bytes(cert_pem)
        (tmp_path / "carol.key").write_bytes(key_pem)
        result = _run(
            daemon,
            config,
            f'eap=TLS\nidentity="carol@example.test"\nca_cert="{daemon.dir / "certs/ca.crt"}"\n'
            f'client_cert="{tmp_path / "carol.crt"}"\nprivate_key="{tmp_path / "carol.key"}"',
            tmp_path,
        )
        assert result.success and result.mppe_ok, result.output[-3000:]
        assert re.search(r"RADIUS listening on 127\.0\.0\.1", daemon.log.read_text())
    finally:
        daemon.stop()
