"""EAP-TTLS v0 server and peer back to back: PAP, CHAP, MS-CHAP-V2, inner EAP, posture."""

from __future__ import annotations

import pytest

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod, Step
from ike.eap.methods import (
    GtcPeerMethod,
    Md5PeerMethod,
    MsChapV2PeerMethod,
    StaticPasswords,
    gtc_server_factory,
    md5_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from ike.eap_ttls.avp import Avp, encode_avps
from ike.eap_ttls.method import (
    EapTtlsPeer,
    EapTtlsServer,
    InnerAuth,
    TtlsPeerConfig,
    TtlsServerConfig,
    ttls_server_factory,
)
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import (
    FakePosturePeer,
    FakePostureServer,
    Pki,
    make_pki,
    run_pair,
)

VERSIONS = [TlsVersion.TLS1_2, TlsVersion.TLS1_3]
USERS = StaticPasswords({"bob": "s3cret-pass", "CORP\\carol": "pw-carol"})
OUTER = b"anonymous@example.com"


@pytest.fixture
def pki(cert_factory: CertFactory) -> Pki:
    return make_pki(cert_factory)


def tls_server(pki: Pki, version: TlsVersion, **kw: object) -> TlsServerConfig:
    kw.setdefault("require_client_cert", False)
    return TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                           max_version=version, **kw)  # type: ignore[arg-type]


def tls_peer(pki: Pki, version: TlsVersion, **kw: object) -> TlsPeerConfig:
    return TlsPeerConfig((pki.ca.cert_pem,), server_name="gw.test", max_version=version,
                         **kw)  # type: ignore[arg-type]


def server_config(pki: Pki, version: TlsVersion, *, posture: bool = False,
                  verdict: bytes = b"ok", **kw: object) -> TtlsServerConfig:
    chain: tuple[tuple[int, object], ...] = ()
    if posture:
        chain = ((54, lambda identity: FakePostureServer(identity, verdict)),)
    return TtlsServerConfig(
        tls_server(pki, version, **kw),
        eap_methods=(
            (26, mschapv2_server_factory(USERS)),
            (4, md5_server_factory(USERS)),
            (6, gtc_server_factory(password_check(USERS))),
        ),
        password_lookup=USERS,
        posture=chain,  # type: ignore[arg-type]
    )


def peer_config(pki: Pki, version: TlsVersion, inner: InnerAuth, password: str = "s3cret-pass",
                eap: tuple[int, ...] = (), posture: FakePosturePeer | None = None,
                identity: bytes = b"bob", **kw: object) -> TtlsPeerConfig:
    factories: dict[int, object] = {
        26: lambda: MsChapV2PeerMethod(identity, password),
        4: lambda: Md5PeerMethod(password),
        6: lambda: GtcPeerMethod(password),
    }
    methods = [(t, factories[t]) for t in eap]
    if posture is not None:
        methods.append((54, lambda: posture))
    return TtlsPeerConfig(tls_peer(pki, version, **kw), identity, inner, password,
                          tuple(methods))  # type: ignore[arg-type]


def check_success(server: EapTtlsServer, peer: EapTtlsPeer) -> None:
    out = run_pair(server, peer)
    assert (out.server, out.peer) == (Decision.SUCCESS, Decision.SUCCESS), (
        server.failure_reason, peer.failure_reason)
    msk, emsk = server.msk(), server.emsk()
    assert msk is not None and emsk is not None and len(msk) == 64 == len(emsk)
    assert msk == peer.msk() and emsk == peer.emsk()
    assert server.session_id is not None and server.session_id == peer.session_id
    assert server.session_id[0] == 21


def test_contract(pki: Pki) -> None:
    server = ttls_server_factory(server_config(pki, TlsVersion.TLS1_3))(OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.PAP))
    assert isinstance(server, EapServerMethod) and isinstance(peer, EapPeerMethod)
    assert server.eap_type == peer.eap_type == 21
    assert server.start() == b"\x20"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("inner", [InnerAuth.PAP, InnerAuth.CHAP, InnerAuth.MSCHAPV2])
def test_non_eap_inner(pki: Pki, version: TlsVersion, inner: InnerAuth) -> None:
    server = EapTtlsServer(server_config(pki, version), OUTER)
    peer = EapTtlsPeer(peer_config(pki, version, inner))
    check_success(server, peer)
    assert server.inner_identity == b"bob"


@pytest.mark.parametrize("inner", [InnerAuth.PAP, InnerAuth.CHAP, InnerAuth.MSCHAPV2])
def test_non_eap_inner_wrong_password(pki: Pki, inner: InnerAuth) -> None:
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_3), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, inner, password="wrong"))
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE and server.msk() is None
    assert "wrong password" in (server.failure_reason or "")


def test_mschapv2_with_domain(pki: Pki) -> None:
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_2), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_2, InnerAuth.MSCHAPV2,
                                   password="pw-carol", identity=b"CORP\\carol"))
    check_success(server, peer)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("eap_type", [26, 4, 6])
def test_inner_eap(pki: Pki, version: TlsVersion, eap_type: int) -> None:
    server = EapTtlsServer(server_config(pki, version), OUTER)
    peer = EapTtlsPeer(peer_config(pki, version, InnerAuth.EAP, eap=(eap_type,)))
    check_success(server, peer)
    assert server.inner_server is not None
    assert server.inner_server.completed_methods == (eap_type,)
    assert server.inner_identity == b"bob"


@pytest.mark.parametrize("eap_type", [26, 4, 6])
def test_inner_eap_wrong_password(pki: Pki, eap_type: int) -> None:
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_3), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.EAP, password="nope",
                                   eap=(eap_type,)))
    out = run_pair(server, peer)
    # MD5 and GTC peers cannot tell a wrong password; only MS-CHAPv2 learns it in-band.
    assert out.server is Decision.FAILURE
    assert (out.peer is Decision.SUCCESS) == (eap_type != 26)
    assert "inner EAP failed" in (server.failure_reason or "")
    assert server.msk() is None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("inner", [InnerAuth.PAP, InnerAuth.MSCHAPV2, InnerAuth.EAP])
def test_posture_after_inner_auth(pki: Pki, version: TlsVersion, inner: InnerAuth) -> None:
    posture = FakePosturePeer()
    server = EapTtlsServer(server_config(pki, version, posture=True), OUTER)
    peer = EapTtlsPeer(peer_config(pki, version, inner, eap=(26,), posture=posture))
    check_success(server, peer)
    assert posture.seen == [b"\x81posture?"]


def test_posture_non_compliant_fails(pki: Pki) -> None:
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_3, posture=True), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.EAP, eap=(26,),
                                   posture=FakePosturePeer(b"infected")))
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE
    assert "posture not compliant" in (server.failure_reason or "")


@pytest.mark.parametrize("version", VERSIONS)
def test_small_fragments(pki: Pki, version: TlsVersion) -> None:
    server = EapTtlsServer(server_config(pki, version, fragment_size=50), OUTER)
    peer = EapTtlsPeer(peer_config(pki, version, InnerAuth.EAP, eap=(26,), fragment_size=50))
    check_success(server, peer)


def test_client_certificate_checked_when_requested(pki: Pki, cert_factory: CertFactory) -> None:
    other = cert_factory.ca("other")
    rogue = cert_factory.issue(other, "bob", name="rogue", eku=("clientAuth",))
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_3, request_client_cert=True,
                                         bind_identity=False), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.PAP,
                                   cert_chain_pem=rogue.chain_pem, key_pem=rogue.key_pem))
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE
    assert "unknown ca" in (server.failure_reason or "").lower()


class RawPeer(EapTtlsPeer):
    """A TTLS peer that sends chosen phase 2 bytes instead of its own AVPs."""

    payload = b""

    def _handshake_done(self, app: bytes) -> Step:
        return self._send(self.payload)


def raw_exchange(pki: Pki, payload: bytes) -> tuple[EapTtlsServer, Decision]:
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_2), OUTER)
    peer = RawPeer(peer_config(pki, TlsVersion.TLS1_2, InnerAuth.PAP))
    peer.payload = payload
    return server, run_pair(server, peer).server


def test_unknown_mandatory_avp_fails(pki: Pki) -> None:
    server, decision = raw_exchange(pki, encode_avps([
        Avp(1, b"bob", mandatory=True), Avp(2, b"s3cret-pass" + b"\0" * 5),
        Avp(4242, b"x", mandatory=True)]))
    assert decision is Decision.FAILURE
    assert "unsupported mandatory AVP 4242" in (server.failure_reason or "")


def test_unknown_optional_avp_is_ignored(pki: Pki) -> None:
    _server, decision = raw_exchange(pki, encode_avps([
        Avp(1, b"bob", mandatory=True), Avp(2, b"s3cret-pass" + b"\0" * 5),
        Avp(4242, b"x"), Avp(7, b"y", vendor_id=99)]))
    assert decision is Decision.SUCCESS


def test_malformed_avps_fail(pki: Pki) -> None:
    server, decision = raw_exchange(pki, b"\x00\x00\x00\x01\x40\x00\x00")
    assert decision is Decision.FAILURE
    assert "malformed AVPs" in (server.failure_reason or "")


def test_chap_with_foreign_challenge_fails(pki: Pki) -> None:
    server, decision = raw_exchange(pki, encode_avps([
        Avp(1, b"bob", mandatory=True), Avp(60, b"\x01" * 16, mandatory=True),
        Avp(3, b"\x00" + b"\x02" * 16, mandatory=True)]))
    assert decision is Decision.FAILURE
    assert "exported challenge" in (server.failure_reason or "")


def test_no_inner_authentication_fails(pki: Pki) -> None:
    server, decision = raw_exchange(pki, encode_avps([Avp(18, b"hello")]))
    assert decision is Decision.FAILURE
    assert "no User-Name" in (server.failure_reason or "")


def test_resumption_refused_for_ttls(pki: Pki) -> None:
    with pytest.raises(ValueError):
        EapTtlsServer(server_config(pki, TlsVersion.TLS1_3, session_resumption=True), OUTER)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificate_replaces_inner_auth(pki: Pki, version: TlsVersion) -> None:
    posture = FakePosturePeer()
    config = TtlsServerConfig(
        tls_server(pki, version, require_client_cert=True),
        posture=((54, lambda identity: FakePostureServer(identity)),),
        client_cert_authenticates=True,
    )
    server = EapTtlsServer(config, b"alice@example.com")
    peer = EapTtlsPeer(TtlsPeerConfig(
        tls_peer(pki, version, cert_chain_pem=pki.client.chain_pem, key_pem=pki.client.key_pem),
        b"alice@example.com", InnerAuth.EAP, eap_methods=((54, lambda: posture),)))
    check_success(server, peer)
    assert posture.seen == [b"\x81posture?"]
    assert server.inner_server is not None and server.inner_server.completed_methods == (54,)


def test_client_certificate_without_posture_succeeds_at_once(pki: Pki) -> None:
    config = TtlsServerConfig(tls_server(pki, TlsVersion.TLS1_3, require_client_cert=True),
                              client_cert_authenticates=True)
    server = EapTtlsServer(config, b"alice@example.com")
    peer = EapTtlsPeer(TtlsPeerConfig(
        tls_peer(pki, TlsVersion.TLS1_3, cert_chain_pem=pki.client.chain_pem,
                 key_pem=pki.client.key_pem),
        b"alice@example.com", InnerAuth.PAP, "unused"))
    check_success(server, peer)


class TunnelledSuccessServer(EapTtlsServer):
    """A TTLS server that also tunnels the inner EAP-Success, then finishes on the ACK."""

    told = False

    def _inner_succeeded(self, success_packet: bytes | None) -> Step:
        assert success_packet is not None and success_packet[0] == 3
        self.told = True
        return self._send(encode_avps([Avp(79, success_packet, mandatory=True)]))

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        if self.told and not app:
            return self._finish()
        return super()._tunnel(app, empty=empty)


def test_peer_accepts_tunnelled_inner_success(pki: Pki) -> None:
    server = TunnelledSuccessServer(server_config(pki, TlsVersion.TLS1_3), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.EAP, eap=(26,)))
    check_success(server, peer)
    assert peer.inner_peer is not None and peer.inner_peer.succeeded


def test_peer_may_continue_after_success(pki: Pki) -> None:
    posture = FakePosturePeer()
    server = EapTtlsServer(server_config(pki, TlsVersion.TLS1_3, posture=True), OUTER)
    peer = EapTtlsPeer(peer_config(pki, TlsVersion.TLS1_3, InnerAuth.PAP, posture=posture))
    decisions = []
    request = server.start()
    while True:
        step = peer.receive(request)
        decisions.append(step.decision)
        assert step.reply is not None
        s = server.receive(step.reply)
        if s.decision is not Decision.CONTINUE:
            break
        assert s.reply is not None
        request = s.reply
    assert s.decision is Decision.SUCCESS
    # SUCCESS came before the posture round, and the peer kept answering.
    first = decisions.index(Decision.SUCCESS)
    assert first < len(decisions) - 1 and peer.may_continue and posture.seen
