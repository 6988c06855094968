"""Arbitrary decrypted phase 2 data (TTLS AVPs, PEAP inner EAP / EAP-TLV) from either side
ends in a clean Step, never an exception."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.eap.method import Decision, Step
from ike.eap.methods import MsChapV2PeerMethod, StaticPasswords, mschapv2_server_factory
from ike.eap_peap.method import EapPeapPeer, EapPeapServer, PeapPeerConfig, PeapServerConfig
from ike.eap_peap.tlv import Tlv, encode_tlvs
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig
from ike.eap_ttls.avp import Avp, encode_avps
from ike.eap_ttls.method import EapTtlsPeer, EapTtlsServer, TtlsPeerConfig, TtlsServerConfig
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import Pki, make_pki, run_pair

USERS = StaticPasswords({"bob": "pw"})


@functools.cache
def pki() -> Pki:
    return make_pki(CertFactory(Path(tempfile.mkdtemp(prefix="phase2-fuzz-"))))


def tls_pair() -> tuple[TlsServerConfig, TlsPeerConfig]:
    p = pki()
    return (TlsServerConfig(p.server.chain_pem, p.server.key_pem, require_client_cert=False),
            TlsPeerConfig((p.ca.cert_pem,)))


avp_junk = st.one_of(
    st.binary(max_size=80),
    st.lists(st.builds(Avp, st.sampled_from([1, 2, 3, 60, 79, 18, 7, 11, 25, 26]),
                       st.binary(max_size=60), st.sampled_from([None, 311, 9]),
                       st.booleans()), max_size=4).map(encode_avps),
)
eap_junk = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda t, d: bytes([t]) + d, st.sampled_from([1, 3, 4, 6, 26, 33, 254]),
              st.binary(max_size=40)),
    st.builds(lambda c, i, tlvs: bytes([c, i]) + (5 + len(tlvs)).to_bytes(2, "big")
              + b"\x21" + tlvs,
              st.sampled_from([1, 2]), st.integers(0, 255),
              st.lists(st.builds(Tlv, st.sampled_from([3, 4, 12, 99]), st.binary(max_size=60),
                                 st.booleans()), max_size=3).map(encode_tlvs)),
)


class RawTtlsPeer(EapTtlsPeer):
    payload = b""

    def _handshake_done(self, app: bytes) -> Step:
        return self._send(self.payload)


class RawPeapServer(EapPeapServer):
    payload = b""

    def _send_inner(self, packet: bytes) -> Step:
        return self._send(self.payload)


class RawPeapPeer(EapPeapPeer):
    payload = b""

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        return self._send(self.payload)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(avp_junk)
def test_ttls_server_takes_any_avps(payload: bytes) -> None:
    s, p = tls_pair()
    server = EapTtlsServer(TtlsServerConfig(s, ((26, mschapv2_server_factory(USERS)),),
                                            password_lookup=USERS), b"anon")
    peer = RawTtlsPeer(TtlsPeerConfig(p, b"bob", eap_methods=()))
    peer.payload = payload
    out = run_pair(server, peer)
    assert out.server in (Decision.FAILURE, Decision.CONTINUE, Decision.SUCCESS)
    if out.server is Decision.FAILURE:
        assert server.failure_reason


@SETTINGS
@given(eap_junk)
def test_peap_server_takes_any_inner_data(payload: bytes) -> None:
    s, p = tls_pair()
    server = EapPeapServer(PeapServerConfig(s, ((26, mschapv2_server_factory(USERS)),)),
                           b"anon")
    peer = RawPeapPeer(PeapPeerConfig(p, b"bob", ((26, lambda: MsChapV2PeerMethod(b"bob",
                                                                                  "pw")),)))
    peer.payload = payload
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE and server.failure_reason


@SETTINGS
@given(eap_junk)
def test_peap_peer_takes_any_inner_data(payload: bytes) -> None:
    s, p = tls_pair()
    server = RawPeapServer(PeapServerConfig(s, ((26, mschapv2_server_factory(USERS)),)),
                           b"anon")
    server.payload = payload
    peer = EapPeapPeer(PeapPeerConfig(p, b"bob", ((26, lambda: MsChapV2PeerMethod(b"bob",
                                                                                  "pw")),)))
    out = run_pair(server, peer, max_rounds=20)
    assert out.peer is not Decision.SUCCESS or peer.msk() is not None


class RawTtlsServer(EapTtlsServer):
    payload = b""

    def _on_avps(self, app: bytes) -> Step:
        return self._send(self.payload)


@SETTINGS
@given(avp_junk)
def test_ttls_peer_takes_any_avps(payload: bytes) -> None:
    s, p = tls_pair()
    server = RawTtlsServer(TtlsServerConfig(s, password_lookup=USERS), b"anon")
    server.payload = payload
    peer = EapTtlsPeer(TtlsPeerConfig(
        p, b"bob", eap_methods=((26, lambda: MsChapV2PeerMethod(b"bob", "pw")),)))
    try:
        run_pair(server, peer, max_rounds=10)
    except AssertionError as exc:  # the raw server never decides; that is fine here
        assert "no decision" in str(exc)
