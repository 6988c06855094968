"""Our EAP-TLS, TTLS and PEAP *peers* against FreeRADIUS 3, an independent EAP server.

The outer EAP runs in ``ike.eap.peer.EapPeer`` (FreeRADIUS offers EAP-MD5 first, so every run
also exercises the Nak).  The MS-MPPE keys of the Access-Accept must equal our MSK:
Recv-Key = MSK[0:32], Send-Key = MSK[32:64] (RFC 2548 / RFC 5216 as FreeRADIUS sends them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ike.eap.method import EapPeerMethod
from ike.eap.methods import GtcPeerMethod, MsChapV2PeerMethod
from ike.eap.peer import EapPeer
from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig
from ike.eap_tls.method import EapTlsPeer
from ike.eap_tls.tls import TlsPeerConfig
from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig
from tests.harness.certs import CertFactory, Issued
from tests.harness.freeradius import FreeRadius
from tests.harness.tools import require
from tests.ike.eap_tls.radius_loop import ACCESS_ACCEPT, RadiusEapClient

pytestmark = pytest.mark.netns

PASSWORD = "s3cret-Pass"


class Lab:
    def __init__(self, radius: FreeRadius, ca: Issued, client: Issued) -> None:
        self.radius, self.ca, self.client = radius, ca, client

    def tls(self, *, client_cert: bool = False) -> TlsPeerConfig:
        return TlsPeerConfig(
            (self.ca.cert_pem,),
            self.client.chain_pem if client_cert else None,
            self.client.key_pem if client_cert else None,
            server_name="radius.test",
        )

    def run(self, identity: bytes, methods: list[tuple[int, Callable[[], Any]]]
            ) -> tuple[EapPeer, int, tuple[bytes, bytes] | None]:
        peer = EapPeer(identity, methods)
        client = RadiusEapClient(self.radius.port, self.radius.secret)
        try:
            code, attrs = client.authenticate(peer, identity)
        finally:
            client.close()
        return peer, code, client.mppe_keys(attrs)


@pytest.fixture(scope="module", params=["1.2", "1.3"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Lab]:
    require("freeradius")
    work = tmp_path_factory.mktemp(f"fr-tls{request.param}")
    certs = CertFactory(Path(work) / "certs")
    ca = certs.ca("lab-ca")
    server = certs.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    client = certs.issue(ca, "alice", eku=("clientAuth",))
    radius = FreeRadius(work / "radius", users={"alice": PASSWORD}, server_cert=server, ca=ca,
                        tls_max_version=request.param)
    with radius:
        yield Lab(radius, ca, client)


def check(lab: Lab, identity: bytes, methods: list[tuple[int, Callable[[], Any]]]) -> EapPeer:
    peer, code, keys = lab.run(identity, methods)
    assert code == ACCESS_ACCEPT and peer.succeeded, (peer.failure_reason,
                                                      lab.radius.log_tail())
    assert peer.msk is not None and keys is not None
    assert keys == (peer.msk[:32], peer.msk[32:64])
    return peer


def test_eap_tls_peer(lab: Lab) -> None:
    made: list[EapTlsPeer] = []

    def factory() -> EapTlsPeer:
        made.append(EapTlsPeer(lab.tls(client_cert=True)))
        return made[-1]

    check(lab, b"alice", [(13, factory)])
    expected = "TLS1_3" if lab.radius.tls_max_version == "1.3" else "TLS1_2"
    assert made[-1].tls.version.name == expected


@pytest.mark.parametrize("inner", [InnerAuth.PAP, InnerAuth.CHAP, InnerAuth.MSCHAPV2,
                                   InnerAuth.EAP])
def test_ttls_peer(lab: Lab, inner: InnerAuth) -> None:
    methods: tuple[tuple[int, Callable[[], EapPeerMethod]], ...] = (
        (26, lambda: MsChapV2PeerMethod(b"alice", PASSWORD)),
    )
    check(lab, b"anonymous", [(21, lambda: EapTtlsPeer(
        TtlsPeerConfig(lab.tls(), b"alice", inner, PASSWORD, methods)))])


@pytest.mark.parametrize("inner", [26, 6])
def test_peap_peer(lab: Lab, inner: int) -> None:
    table: dict[int, Callable[[], EapPeerMethod]] = {
        26: lambda: MsChapV2PeerMethod(b"alice", PASSWORD),
        6: lambda: GtcPeerMethod(PASSWORD),
    }
    check(lab, b"anonymous", [(25, lambda: EapPeapPeer(
        PeapPeerConfig(lab.tls(), b"alice", ((inner, table[inner]),))))])


def test_ttls_peer_wrong_password(lab: Lab) -> None:
    peer, code, _ = lab.run(b"anonymous", [(21, lambda: EapTtlsPeer(
        TtlsPeerConfig(lab.tls(), b"alice", InnerAuth.PAP, "nope")))])
    assert code != ACCESS_ACCEPT and not peer.succeeded
