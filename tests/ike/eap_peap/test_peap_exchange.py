"""PEAP server and peer back to back: v0 with cryptobinding, v1, posture, negative cases."""

from __future__ import annotations

import pytest

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod, Step
from ike.eap.methods import (
    GtcPeerMethod,
    MsChapV2PeerMethod,
    StaticPasswords,
    gtc_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap_peap.keys import compound_keys, session_keys
from ike.eap_peap.method import (
    EapPeapPeer,
    EapPeapServer,
    PeapPeerConfig,
    PeapServerConfig,
    peap_server_factory,
)
from ike.eap_tls.keys import key_material
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import (
    FakePosturePeer,
    FakePostureServer,
    Pki,
    make_pki,
    run_pair,
)

VERSIONS = [TlsVersion.TLS1_2, TlsVersion.TLS1_3]
USERS = StaticPasswords({"bob": "s3cret-pass"})
OUTER = b"anonymous"


@pytest.fixture
def pki(cert_factory: CertFactory) -> Pki:
    return make_pki(cert_factory)


def server_config(pki: Pki, version: TlsVersion, *, methods: tuple[int, ...] = (26, 6),
                  posture: tuple[int, ...] = (), verdict: bytes = b"ok", peap_version: int = 0,
                  **kw: object) -> PeapServerConfig:
    table = {26: mschapv2_server_factory(USERS), 6: gtc_server_factory(password_check(USERS))}
    return PeapServerConfig(
        TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                        max_version=version, require_client_cert=False,
                        **kw),  # type: ignore[arg-type]
        eap_methods=tuple((t, table[t]) for t in methods),
        posture=tuple((t, lambda identity: FakePostureServer(identity, verdict))
                      for t in posture),
        max_version=peap_version,
    )


def peer_config(pki: Pki, version: TlsVersion, *, password: str = "s3cret-pass",
                methods: tuple[int, ...] = (26, 6), posture: dict[int, FakePosturePeer]
                | None = None, peap_version: int = 0, **kw: object) -> PeapPeerConfig:
    table = {26: lambda: MsChapV2PeerMethod(b"bob", password),
             6: lambda: GtcPeerMethod(password)}
    chosen: list[tuple[int, object]] = [(t, table[t]) for t in methods]
    for t, p in (posture or {}).items():
        chosen.append((t, lambda p=p: p))
    return PeapPeerConfig(
        TlsPeerConfig((pki.ca.cert_pem,), server_name="gw.test", max_version=version,
                      **kw),  # type: ignore[arg-type]
        b"bob", tuple(chosen), max_version=peap_version)  # type: ignore[arg-type]


def check_success(server: EapPeapServer, peer: EapPeapPeer) -> None:
    out = run_pair(server, peer)
    assert (out.server, out.peer) == (Decision.SUCCESS, Decision.SUCCESS), (
        server.failure_reason, peer.failure_reason)
    msk, emsk = server.msk(), server.emsk()
    assert msk is not None and emsk is not None and len(msk) == len(emsk) == 64
    assert msk == peer.msk() and emsk == peer.emsk()
    assert server.session_id is not None and server.session_id == peer.session_id
    assert server.session_id[0] == 25


def test_contract(pki: Pki) -> None:
    server = peap_server_factory(server_config(pki, TlsVersion.TLS1_3))(OUTER)
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3))
    assert isinstance(server, EapServerMethod) and isinstance(peer, EapPeerMethod)
    assert server.eap_type == peer.eap_type == 25
    assert server.start() == b"\x20"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("inner", [26, 6])
def test_peapv0_with_cryptobinding(pki: Pki, version: TlsVersion, inner: int) -> None:
    server = EapPeapServer(server_config(pki, version, methods=(inner,)), OUTER)
    peer = EapPeapPeer(peer_config(pki, version, methods=(inner,)))
    check_success(server, peer)
    assert server.version == 0
    assert server.inner_identity == b"bob"
    assert server.inner_server.completed_methods == (inner,)
    # MSK comes from the cryptobinding chain, not directly from the TLS key material.
    tk = key_material(server.tls, 25)[:60]
    isk = server.inner_server.msk[:32] if server.inner_server.msk else None
    assert server.msk() == session_keys(compound_keys(tk, isk).ipmk)[0]
    assert server.msk() != key_material(server.tls, 25)[:64]
    if inner == 6:
        assert isk is None  # GTC exports no key: all-zero ISK


def test_mschapv2_isk_is_server_recv_then_send(pki: Pki) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_2, methods=(26,)), OUTER)
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_2, methods=(26,)))
    check_success(server, peer)
    msk = server.inner_server.msk
    assert msk is not None and len(msk) == 64 and msk[32:] == b"\x00" * 32


def test_inner_nak_moves_to_second_method(pki: Pki) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_3, methods=(26, 6)), OUTER)
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3, methods=(6,)))
    check_success(server, peer)
    assert server.inner_server.completed_methods == (6,)


@pytest.mark.parametrize("inner", [26, 6])
def test_wrong_password(pki: Pki, inner: int) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_3, methods=(inner,)), OUTER)
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3, password="wrong", methods=(inner,)))
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE and out.peer is Decision.FAILURE
    assert "PEAP inner EAP failed" in (server.failure_reason or "")
    assert server.msk() is None and peer.msk() is None


@pytest.mark.parametrize("posture_type", [54, 38])
@pytest.mark.parametrize("version", VERSIONS)
def test_posture_after_authentication(pki: Pki, version: TlsVersion, posture_type: int) -> None:
    posture = FakePosturePeer()
    server = EapPeapServer(server_config(pki, version, posture=(posture_type,)), OUTER)
    peer = EapPeapPeer(peer_config(pki, version, posture={posture_type: posture}))
    check_success(server, peer)
    assert server.inner_server.completed_methods == (26, posture_type)
    assert posture.seen == [b"\x81posture?"]


def test_posture_failure(pki: Pki) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_3, posture=(54,)), OUTER)
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3,
                                   posture={54: FakePosturePeer(b"infected")}))
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE
    assert "posture not compliant" in (server.failure_reason or "")


class TamperingPeer(EapPeapPeer):
    """Flips a bit of the compound MAC in its Crypto-Binding response."""

    def _send(self, app_data: bytes = b"", decision: Decision = Decision.CONTINUE) -> Step:
        if app_data[:1] == b"\x02" and len(app_data) > 5 and app_data[4] == 33:
            app_data = app_data[:-1] + bytes([app_data[-1] ^ 1])
        return super()._send(app_data, decision)


class TamperingServer(EapPeapServer):
    def _send(self, app_data: bytes = b"") -> Step:
        if app_data[:1] == b"\x01" and len(app_data) > 5 and app_data[4] == 33:
            app_data = app_data[:-1] + bytes([app_data[-1] ^ 1])
        return super()._send(app_data)


@pytest.mark.parametrize("version", VERSIONS)
def test_tampered_cryptobinding_from_peer(pki: Pki, version: TlsVersion) -> None:
    server = EapPeapServer(server_config(pki, version), OUTER)
    out = run_pair(server, TamperingPeer(peer_config(pki, version)))
    assert out.server is Decision.FAILURE
    assert "compound MAC mismatch" in (server.failure_reason or "")
    assert server.msk() is None


def test_tampered_cryptobinding_from_server(pki: Pki) -> None:
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3))
    out = run_pair(TamperingServer(server_config(pki, TlsVersion.TLS1_3), OUTER), peer)
    assert out.peer is Decision.FAILURE and out.server is Decision.FAILURE
    assert "compound MAC mismatch" in (peer.failure_reason or "")
    assert peer.msk() is None


@pytest.mark.parametrize("version", VERSIONS)
def test_peapv1_when_peer_asks(pki: Pki, version: TlsVersion) -> None:
    server = EapPeapServer(server_config(pki, version, peap_version=1), OUTER)
    peer = EapPeapPeer(peer_config(pki, version, peap_version=1))
    check_success(server, peer)
    assert server.version == 1 and peer.version == 1
    assert server.msk() == key_material(server.tls, 25)[:64]


def test_server_offering_v1_drops_to_v0(pki: Pki) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_3, peap_version=1), OUTER)
    assert server.start() == b"\x21"
    peer = EapPeapPeer(peer_config(pki, TlsVersion.TLS1_3, peap_version=0))
    out = run_pair(server, peer)
    assert out.server is Decision.SUCCESS and server.version == 0


def test_peer_choosing_higher_version_fails(pki: Pki) -> None:
    server = EapPeapServer(server_config(pki, TlsVersion.TLS1_3), OUTER)
    server.start()
    step = server.receive(b"\x01\x16\x03\x01")
    assert step.decision is Decision.FAILURE and "version 1" in (server.failure_reason or "")


@pytest.mark.parametrize("version", VERSIONS)
def test_small_fragments(pki: Pki, version: TlsVersion) -> None:
    server = EapPeapServer(server_config(pki, version, fragment_size=40), OUTER)
    peer = EapPeapPeer(peer_config(pki, version, fragment_size=40))
    check_success(server, peer)
