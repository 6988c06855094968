"""EAP-TLS, TTLS and PEAP under the real EAP state machines of ``ike.eap`` (outer EapServer
and EapPeer), MSK handed up to the EAP layer on both sides."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ike.eap.method import EapPeerMethod, EapServerMethod
from ike.eap.methods import MsChapV2PeerMethod, StaticPasswords, mschapv2_server_factory
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig, PeapServerConfig, peap_server_factory
from ike.eap_tls.method import EapTlsPeer, EapTlsServer
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from ike.eap_ttls.method import (
    EapTtlsPeer,
    InnerAuth,
    TtlsPeerConfig,
    TtlsServerConfig,
    ttls_server_factory,
)
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import FakePosturePeer, FakePostureServer, Pki, make_pki

USERS = StaticPasswords({"bob": "pw"})
VERSIONS = [TlsVersion.TLS1_2, TlsVersion.TLS1_3]


@pytest.fixture
def pki(cert_factory: CertFactory) -> Pki:
    return make_pki(cert_factory)


def converse(server: EapServer, peer: EapPeer) -> None:
    packet: bytes | None = server.start()
    for _ in range(200):
        assert packet is not None
        answer = peer.receive(packet)
        if server.done or peer.done:
            break
        assert answer is not None, peer.failure_reason
        packet = server.receive(answer)
    assert server.succeeded, server.failure_reason
    assert peer.succeeded, peer.failure_reason
    assert server.msk is not None and server.msk == peer.msk


def tls_configs(pki: Pki, version: TlsVersion, client_cert: bool
                ) -> tuple[TlsServerConfig, TlsPeerConfig]:
    return (
        TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                        max_version=version, require_client_cert=client_cert),
        TlsPeerConfig((pki.ca.cert_pem,), pki.client.chain_pem if client_cert else None,
                      pki.client.key_pem if client_cert else None, server_name="gw.test",
                      max_version=version),
    )


def inner_peer() -> tuple[tuple[int, Callable[[], EapPeerMethod]], ...]:
    return ((26, lambda: MsChapV2PeerMethod(b"bob", "pw")),)


@pytest.mark.parametrize("version", VERSIONS)
def test_eap_tls(pki: Pki, version: TlsVersion) -> None:
    sconf, pconf = tls_configs(pki, version, True)

    def factory(identity: bytes) -> EapServerMethod:
        return EapTlsServer(sconf, identity)

    converse(EapServer([(13, factory)]),
             EapPeer(b"alice@example.com", [(13, lambda: EapTlsPeer(pconf))]))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("inner", [InnerAuth.PAP, InnerAuth.MSCHAPV2, InnerAuth.EAP])
def test_ttls(pki: Pki, version: TlsVersion, inner: InnerAuth) -> None:
    sconf, pconf = tls_configs(pki, version, False)
    ttls = TtlsServerConfig(sconf, ((26, mschapv2_server_factory(USERS)),),
                            password_lookup=USERS)
    converse(EapServer([(21, ttls_server_factory(ttls))]),
             EapPeer(b"anonymous", [(21, lambda: EapTtlsPeer(
                 TtlsPeerConfig(pconf, b"bob", inner, "pw", inner_peer())))]))


def test_ttls_posture_after_inner_auth(pki: Pki) -> None:
    sconf, pconf = tls_configs(pki, TlsVersion.TLS1_3, False)
    ttls = TtlsServerConfig(sconf, ((26, mschapv2_server_factory(USERS)),),
                            password_lookup=USERS,
                            posture=((54, lambda identity: FakePostureServer(identity)),))
    posture = FakePosturePeer()
    converse(EapServer([(21, ttls_server_factory(ttls))]),
             EapPeer(b"anonymous", [(21, lambda: EapTtlsPeer(
                 TtlsPeerConfig(pconf, b"bob", InnerAuth.PAP, "pw",
                                ((54, lambda: posture),))))]))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("posture", [False, True])
def test_peap(pki: Pki, version: TlsVersion, posture: bool) -> None:
    sconf, pconf = tls_configs(pki, version, False)
    chain = ((54, lambda identity: FakePostureServer(identity)),) if posture else ()
    peap = PeapServerConfig(sconf, ((26, mschapv2_server_factory(USERS)),),
                            posture=chain)
    methods = inner_peer() + (((54, FakePosturePeer),) if posture else ())
    converse(EapServer([(25, peap_server_factory(peap))]),
             EapPeer(b"anonymous", [(25, lambda: EapPeapPeer(
                 PeapPeerConfig(pconf, b"bob", methods)))]))
