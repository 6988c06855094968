"""PT-EAP run by the project's EAP layer (ike.eap EapServer / EapPeer) and inside EAP-TTLS.

Tests only: library code in ``nea`` never imports these ``ike`` modules.
"""

from __future__ import annotations

import pytest

from ike.eap.method import Decision
from ike.eap.methods import Md5PeerMethod, StaticPasswords, md5_server_factory
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.eap_peap import method as peap
from ike.eap_ttls import method as ttls
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc, Tncs
from nea.pt_eap import PtEapPeer, PtEapServer, eap_tnc_peer_factory, eap_tnc_server_factory
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

USERS = StaticPasswords({"bob": "s3cret"})


def _exchange(server: EapServer, peer: EapPeer, limit: int = 100) -> None:
    packet: bytes | None = server.start()
    for _ in range(limit):
        assert packet is not None
        response = peer.receive(packet)
        if response is None:
            return
        packet = server.receive(response)
        if server.done:
            assert packet is not None
            peer.receive(packet)
            return
    raise AssertionError("no end")


class Holder:
    """Keeps the method objects the factories built, to read their verdicts."""

    def __init__(self) -> None:
        self.server: PtEapServer | None = None
        self.peer: PtEapPeer | None = None

    def server_factory(self, identity: bytes) -> PtEapServer:
        assert identity == b"bob"
        self.server = PtEapServer(Tncs([CommandValidator()], config=PbTncConfig.for_pt_eap()))
        return self.server

    def peer_factory(self, command: str) -> PtEapPeer:
        self.peer = PtEapPeer(Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap()))
        return self.peer


@pytest.mark.parametrize(
    ("command", "ok", "rec"),
    [
        ("allow", True, AccessRecommendation.ALLOWED),
        ("isolate", True, AccessRecommendation.QUARANTINED),
        ("block", False, AccessRecommendation.DENIED),
    ],
)
def test_chained_after_md5(command: str, ok: bool, rec: AccessRecommendation) -> None:
    h = Holder()
    server = EapServer([(4, md5_server_factory(USERS))], chain=[(54, h.server_factory)])
    peer = EapPeer(
        b"bob",
        [(4, lambda: Md5PeerMethod("s3cret")), (54, lambda: h.peer_factory(command))],
    )
    _exchange(server, peer)
    assert server.succeeded is ok and peer.succeeded is ok
    assert server.failed is (not ok) and peer.failed is (not ok)
    assert h.server is not None and h.server.recommendation is rec
    assert h.peer is not None and h.peer.recommendation is rec
    if ok:
        assert server.completed_methods == (4, 54)
        assert server.msk is None  # MD5 and PT-EAP export no keys
    else:
        assert "denies access" in (server.failure_reason or "")


def test_as_the_only_method() -> None:
    h = Holder()
    server = EapServer([(54, h.server_factory)])
    peer = EapPeer(b"bob", [(54, lambda: h.peer_factory("allow"))])
    _exchange(server, peer)
    assert server.succeeded and peer.succeeded


def test_eap_tnc_chained() -> None:
    server = EapServer(
        [(4, md5_server_factory(USERS))],
        chain=[(38, eap_tnc_server_factory(lambda ident: Tncs([CommandValidator()])))],
    )
    peer = EapPeer(
        b"bob",
        [
            (4, lambda: Md5PeerMethod("s3cret")),
            (38, eap_tnc_peer_factory(lambda: Tncc([command_collector("isolate")]))),
        ],
    )
    _exchange(server, peer)
    assert server.succeeded and peer.succeeded
    assert server.completed_methods == (4, 38)


def test_peer_without_pt_eap_naks_and_fails() -> None:
    h = Holder()
    server = EapServer([(4, md5_server_factory(USERS))], chain=[(54, h.server_factory)])
    peer = EapPeer(b"bob", [(4, lambda: Md5PeerMethod("s3cret"))])
    _exchange(server, peer)
    assert server.failed
    assert "chained method" in (server.failure_reason or "")


# --------------------------------------------------------------------------- inside EAP-TTLS


def test_inside_ttls(cert_factory: object) -> None:
    from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
    from tests.ike.eap_tls.eap_tls_helpers import make_pki, run_pair

    pki = make_pki(cert_factory)  # type: ignore[arg-type]
    outcomes = {}
    for command in ("allow", "block"):
        h = Holder()
        server_cfg = ttls.TtlsServerConfig(
            TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                            max_version=TlsVersion.TLS1_3, require_client_cert=False),
            eap_methods=((4, md5_server_factory(USERS)),),
            posture=((54, h.server_factory),),
        )
        peer_cfg = ttls.TtlsPeerConfig(
            TlsPeerConfig((pki.ca.cert_pem,), server_name="gw.test",
                          max_version=TlsVersion.TLS1_3),
            b"bob",
            ttls.InnerAuth.EAP,
            None,
            ((4, lambda: Md5PeerMethod("s3cret")),
             (54, lambda c=command, hh=h: hh.peer_factory(c))),  # type: ignore[misc]
        )
        server = ttls.EapTtlsServer(server_cfg, b"anonymous")
        peer = ttls.EapTtlsPeer(peer_cfg)
        out = run_pair(server, peer)
        outcomes[command] = (out.server, h.server.recommendation if h.server else None)
    assert outcomes["allow"] == (Decision.SUCCESS, AccessRecommendation.ALLOWED)
    assert outcomes["block"] == (Decision.FAILURE, AccessRecommendation.DENIED)


# --------------------------------------------------------------------------- inside PEAP


@pytest.mark.parametrize("tnc", [True, False], ids=["eap-tnc", "pt-eap"])
def test_inside_peap(cert_factory: object, tnc: bool) -> None:
    from ike.eap.methods import GtcPeerMethod, gtc_server_factory, password_check
    from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
    from nea.pt_eap import EapTncPeer, EapTncServer
    from tests.ike.eap_tls.eap_tls_helpers import make_pki, run_pair

    pki = make_pki(cert_factory)  # type: ignore[arg-type]
    eap_type = 38 if tnc else 54
    outcomes = {}
    for command in ("isolate", "block"):
        made: dict[str, object] = {}

        def server_factory(identity: bytes, made: dict[str, object] = made) -> object:
            tncs = Tncs([CommandValidator()], config=PbTncConfig.for_pt_eap())
            made["server"] = EapTncServer(tncs) if tnc else PtEapServer(tncs)
            return made["server"]

        def peer_factory(c: str = command) -> object:
            tncc = Tncc([command_collector(c)], config=PbTncConfig.for_pt_eap())
            return EapTncPeer(tncc) if tnc else PtEapPeer(tncc)

        server_cfg = peap.PeapServerConfig(
            TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                            max_version=TlsVersion.TLS1_2, require_client_cert=False),
            eap_methods=((6, gtc_server_factory(password_check(USERS))),),
            posture=((eap_type, server_factory),),
        )
        peer_cfg = peap.PeapPeerConfig(
            TlsPeerConfig((pki.ca.cert_pem,), server_name="gw.test",
                          max_version=TlsVersion.TLS1_2),
            b"bob",
            ((6, lambda: GtcPeerMethod("s3cret")), (eap_type, peer_factory)),
        )
        out = run_pair(peap.EapPeapServer(server_cfg, b"anonymous"), peap.EapPeapPeer(peer_cfg))
        inner = made.get("server")
        outcomes[command] = (out.server, getattr(inner, "recommendation", None))
    assert outcomes["isolate"] == (Decision.SUCCESS, AccessRecommendation.QUARANTINED)
    assert outcomes["block"] == (Decision.FAILURE, AccessRecommendation.DENIED)
