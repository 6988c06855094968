"""PT-EAP (nea.pt_eap, handed in as a posture method factory) inside EAP-FAST, back to back.

Tests only: ``ike`` never imports ``nea``; the test plays the composition root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ike.eap.methods import MsChapV2PeerMethod, StaticPasswords, mschapv2_server_factory
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.eap_fast import (
    EapFastPeer,
    EapFastServer,
    FastPeerConfig,
    FastServerConfig,
    PacStore,
    Provisioning,
)
from ike.eap_tls import TlsPeerConfig, TlsServerConfig
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc, Tncs
from nea.pt_eap import PtEapPeer, PtEapServer
from tests.harness.certs import CertFactory
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

PASSWORDS = StaticPasswords({"bob": "hello"})


@pytest.mark.parametrize(
    ("command", "ok", "rec"),
    [
        ("allow", True, AccessRecommendation.ALLOWED),
        ("isolate", True, AccessRecommendation.QUARANTINED),
        ("block", False, AccessRecommendation.DENIED),
    ],
)
def test_pt_eap_after_mschapv2(
    tmp_path: Path, command: str, ok: bool, rec: AccessRecommendation
) -> None:
    certs = CertFactory(tmp_path / "certs")
    ca = certs.ca("ca", key_type="rsa", rsa_bits=2048)
    cert = certs.issue(ca, "radius.test", san_dns=("radius.test",), key_type="rsa", rsa_bits=2048)

    def posture_server(identity: bytes) -> PtEapServer:
        assert identity == b"bob"  # the inner identity, not the outer one
        return PtEapServer(Tncs([CommandValidator()], config=PbTncConfig.for_pt_eap()))

    def posture_peer() -> PtEapPeer:
        return PtEapPeer(Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap()))

    sconf = FastServerConfig(
        tls=TlsServerConfig(cert.chain_pem, cert.key_pem, require_client_cert=False),
        a_id=b"nea",
        eap_methods=((EapType.MSCHAPV2, mschapv2_server_factory(PASSWORDS)),),
        posture=((EapType.PT_EAP, posture_server),),
        provisioning=Provisioning.AUTHENTICATED,
    )
    pconf = FastPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,), server_name="radius.test"),
        identity=b"bob",
        eap_methods=(
            (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", "hello")),
            (EapType.PT_EAP, posture_peer),
        ),
        pac_store=PacStore(),
    )
    fast: list[EapFastServer] = []

    def factory(identity: bytes) -> EapFastServer:
        fast.append(EapFastServer(sconf, identity))
        return fast[-1]

    server = EapServer([(EapType.FAST, factory)])
    peer = EapPeer(b"anonymous", [(EapType.FAST, lambda: EapFastPeer(pconf))], idle_timeout=None)
    packet: bytes | None = server.start()
    for _ in range(80):
        assert packet is not None
        response = peer.receive(packet)
        if response is None or server.done:
            break
        packet = server.receive(response)
        if server.done:
            assert packet is not None
            peer.receive(packet)
            break
    posture = fast[0].inner_methods[-1]
    assert isinstance(posture, PtEapServer) and posture.recommendation is rec
    assert server.succeeded is ok and peer.succeeded is ok, server.failure_reason
    if ok:
        assert fast[0].completed_methods == [EapType.MSCHAPV2, EapType.PT_EAP]
        assert server.msk is not None and server.msk == peer.msk
    else:
        assert server.msk is None
