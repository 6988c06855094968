"""wpa_supplicant's eapol_test (Debian ``eapoltest``) against our EAP-TLS, TTLS and PEAP
servers, through the RADIUS engine on a loopback socket.

eapol_test derives the MSK itself and compares it with MS-MPPE-Recv/Send-Key of the
Access-Accept (``MPPE keys OK``), so these runs check keys, cryptobinding and framing
against an independent implementation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ike.eap.methods import (
    StaticPasswords,
    gtc_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap_peap.method import PeapServerConfig, peap_server_factory
from ike.eap_tls.method import EapTlsServer
from ike.eap_tls.tls import TlsServerConfig
from ike.eap_ttls.method import TtlsServerConfig, ttls_server_factory
from tests.harness.certs import CertFactory, Issued
from tests.harness.eapol_test import EapolResult, run_eapol_test
from tests.harness.tools import require
from tests.ike.eap_tls.radius_loop import SECRET, LoopbackRadius

USERS = StaticPasswords({"bob": "hello"})


class Setup:
    def __init__(self, tmp: Path) -> None:
        certs = CertFactory(tmp / "certs")
        self.ca: Issued = certs.ca("ca")
        self.server = certs.issue(self.ca, "radius.test", san_dns=("radius.test",),
                                  eku=("serverAuth",))
        self.client = certs.issue(self.ca, "alice", eku=("clientAuth",))
        self.tmp = tmp

    def tls(self, **kw: object) -> TlsServerConfig:
        return TlsServerConfig(self.server.chain_pem, self.server.key_pem, (self.ca.cert_pem,),
                               **kw)  # type: ignore[arg-type]

    def run(self, radius: LoopbackRadius, block: str) -> EapolResult:
        result = run_eapol_test(block, port=radius.port, secret=SECRET, workdir=self.tmp,
                                timeout=15)
        assert not radius.errors, radius.errors
        return result


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require("eapol_test")
    yield Setup(tmp_path)


INNER = [(26, mschapv2_server_factory(USERS)), (6, gtc_server_factory(password_check(USERS)))]


def peap_radius(setup: Setup, **kw: object) -> LoopbackRadius:
    fragment = kw.pop("fragment_size", 1024)
    config = PeapServerConfig(setup.tls(require_client_cert=False, fragment_size=fragment),
                              eap_methods=tuple(INNER), **kw)  # type: ignore[arg-type]
    return LoopbackRadius([(25, peap_server_factory(config))])


def peap_block(setup: Setup, phase1: str, phase2: str = "auth=MSCHAPV2",
               password: str = "hello") -> str:
    return (f'eap=PEAP\nidentity="bob"\nanonymous_identity="anonymous"\n'
            f'password="{password}"\nca_cert="{setup.ca.cert_path}"\n'
            f'phase1="{phase1}"\nphase2="{phase2}"')


def ok(result: EapolResult) -> None:
    assert result.success and result.mppe_ok, result.output[-3000:]


@pytest.mark.parametrize("tls13", [0, 1])
@pytest.mark.parametrize("phase2", ["auth=MSCHAPV2", "auth=GTC"])
def test_peapv0_cryptobinding_required_by_peer(setup: Setup, tls13: int, phase2: str) -> None:
    radius = peap_radius(setup)
    try:
        result = setup.run(radius, peap_block(
            setup, f"tls_disable_tlsv1_3={1 - tls13} crypto_binding=2", phase2))
    finally:
        radius.close()
    ok(result)
    assert "Valid cryptobinding TLV received" in result.output
    assert ("TLSv1.3" if tls13 else "TLSv1.2") in result.output


def test_peapv1_when_peer_asks(setup: Setup) -> None:
    radius = peap_radius(setup, max_version=1)
    try:
        result = setup.run(radius, peap_block(setup, "tls_disable_tlsv1_3=1 peapver=1"))
    finally:
        radius.close()
    ok(result)
    assert "Using PEAP version 1" in result.output


def test_peap_small_fragments(setup: Setup) -> None:
    radius = peap_radius(setup, fragment_size=200)
    try:
        result = setup.run(radius, peap_block(setup, "tls_disable_tlsv1_3=0 crypto_binding=2"))
    finally:
        radius.close()
    ok(result)


def test_peap_wrong_password_rejected(setup: Setup) -> None:
    radius = peap_radius(setup)
    try:
        result = setup.run(radius, peap_block(setup, "crypto_binding=1", password="nope"))
    finally:
        radius.close()
    assert not result.success


def test_peap_peer_without_cryptobinding_refused(setup: Setup) -> None:
    radius = peap_radius(setup)
    try:
        result = setup.run(radius, peap_block(setup, "crypto_binding=0"))
    finally:
        radius.close()
    assert not result.success


@pytest.mark.parametrize("tls13", [0, 1])
def test_eap_tls_small_fragments(setup: Setup, tls13: int) -> None:
    config = setup.tls(fragment_size=100)
    radius = LoopbackRadius([(13, lambda identity: EapTlsServer(config, identity))])
    try:
        result = setup.run(radius, (
            f'eap=TLS\nidentity="alice"\nca_cert="{setup.ca.cert_path}"\n'
            f'client_cert="{setup.client.cert_path}"\nprivate_key="{setup.client.key_path}"\n'
            f'phase1="tls_disable_tlsv1_3={1 - tls13}"\nfragment_size=100'))
    finally:
        radius.close()
    ok(result)


@pytest.mark.parametrize("tls13", [0, 1])
@pytest.mark.parametrize("phase2", ["auth=PAP", "auth=CHAP", "auth=MSCHAPV2",
                                    "autheap=MSCHAPV2", "autheap=GTC"])
def test_ttls(setup: Setup, tls13: int, phase2: str) -> None:
    config = TtlsServerConfig(setup.tls(require_client_cert=False), eap_methods=tuple(INNER),
                              password_lookup=USERS)
    radius = LoopbackRadius([(21, ttls_server_factory(config))])
    try:
        result = setup.run(radius, (
            f'eap=TTLS\nidentity="bob"\nanonymous_identity="anonymous"\npassword="hello"\n'
            f'ca_cert="{setup.ca.cert_path}"\nphase1="tls_disable_tlsv1_3={1 - tls13}"\n'
            f'phase2="{phase2}"'))
    finally:
        radius.close()
    ok(result)


@pytest.mark.parametrize("tls13", [0, 1])
def test_eap_tls_session_resumption(setup: Setup, tls13: int) -> None:
    """eapol_test -r1 re-authenticates once with the cached session; both runs succeed
    with matching keys and the second handshake is abbreviated."""
    config = setup.tls(session_resumption=True)
    radius = LoopbackRadius([(13, lambda identity: EapTlsServer(config, identity))])
    try:
        result = run_eapol_test(
            f'eap=TLS\nidentity="alice"\nca_cert="{setup.ca.cert_path}"\n'
            f'client_cert="{setup.client.cert_path}"\nprivate_key="{setup.client.key_path}"\n'
            f'phase1="tls_disable_tlsv1_3={1 - tls13}"',
            port=radius.port, secret=SECRET, workdir=setup.tmp, timeout=15,
            extra_args=("-r1",),
        )
        assert not radius.errors, radius.errors
    finally:
        radius.close()
    assert result.success and result.mppe_counts == (2, 0), result.output[-3000:]
    assert "Handshake finished - resumed=1" in result.output
