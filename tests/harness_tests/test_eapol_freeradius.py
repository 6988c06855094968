"""eapol_test against a real FreeRADIUS: the runner reads SUCCESS/FAILURE and MPPE right."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.certs import CertFactory
from tests.harness.eapol_test import network_conf, run_eapol_test
from tests.harness.freeradius import FreeRadius
from tests.harness.netns import NetnsFactory
from tests.harness.tools import require

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
def _tools() -> None:
    require("eapol_test")
    require("freeradius")


def _peap(user: str, password: str, ca: Path) -> str:
    return (
        f'eap=PEAP\nidentity="{user}"\npassword="{password}"\n'
        f'phase2="auth=MSCHAPV2"\nca_cert="{ca}"'
    )


def test_network_conf_wraps_once() -> None:
    wrapped = network_conf('eap=MD5\nidentity="a"')
    assert wrapped.startswith("network={\n") and wrapped.rstrip().endswith("}")
    assert "key_mgmt=WPA-EAP" in wrapped and "ssid=" in wrapped
    assert network_conf(wrapped) == wrapped


def test_peap_mschapv2_in_namespace(
    netns: NetnsFactory, freeradius_factory: Callable[..., FreeRadius], tmp_path: Path
) -> None:
    ns = netns.namespace("rad")
    radius = freeradius_factory(netns=ns, users={"bob": "hello"})
    assert radius.port == 1812  # a fresh namespace: the standard port is ours
    good = run_eapol_test(
        _peap("bob", "hello", radius.ca.cert_path),
        port=radius.port,
        secret=radius.secret,
        workdir=tmp_path / "eapol",
        timeout=10,
        netns=ns,
    )
    assert good.success, good.output[-3000:]
    assert good.mppe_ok is True and good.mppe_counts == (1, 0)
    assert good.returncode == 0

    bad = run_eapol_test(
        _peap("bob", "wrong", radius.ca.cert_path),
        port=radius.port,
        secret=radius.secret,
        workdir=tmp_path / "eapol",
        timeout=10,
        netns=ns,
    )
    assert not bad.success
    assert bad.output.rstrip().endswith("FAILURE")
    assert bad.returncode != 0


def test_eap_tls_client_cert_on_loopback(
    freeradius_factory: Callable[..., FreeRadius], cert_factory: CertFactory, tmp_path: Path
) -> None:
    ca = cert_factory.ca("ca")
    server = cert_factory.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    client = cert_factory.issue(ca, "alice", san_email=("alice@example.test",), eku=("clientAuth",))
    radius = freeradius_factory(server_cert=server, ca=ca)
    assert radius.port not in (0, 1812)
    block = (
        f'eap=TLS\nidentity="alice"\nca_cert="{ca.cert_path}"\n'
        f'client_cert="{client.cert_path}"\nprivate_key="{client.key_path}"'
    )
    result = run_eapol_test(
        block, port=radius.port, secret=radius.secret, workdir=tmp_path / "eapol", timeout=10
    )
    assert result.success, result.output[-3000:]
    assert result.mppe_ok is True

    # Wrong shared secret: the server drops the request, eapol_test times out with FAILURE.
    wrong = run_eapol_test(
        block, port=radius.port, secret="not-the-secret", workdir=tmp_path / "eapol", timeout=2
    )
    assert not wrong.success
