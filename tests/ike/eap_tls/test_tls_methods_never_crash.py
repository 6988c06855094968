"""Unexpected input at any point of an EAP-TLS / TTLS / PEAP exchange ends in a clean
``Step`` (usually FAILURE with a failure_reason), never an exception."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod, Step
from ike.eap.methods import MsChapV2PeerMethod, StaticPasswords, mschapv2_server_factory
from ike.eap_peap.method import EapPeapPeer, EapPeapServer, PeapPeerConfig, PeapServerConfig
from ike.eap_tls.method import EapTlsPeer, EapTlsServer
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from ike.eap_ttls.method import EapTtlsPeer, EapTtlsServer, TtlsPeerConfig, TtlsServerConfig
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import Pki, make_pki

USERS = StaticPasswords({"bob": "pw"})


@functools.cache
def pki() -> Pki:
    return make_pki(CertFactory(Path(tempfile.mkdtemp(prefix="eaptls-fuzz-"))))


def make(kind: str, version: TlsVersion) -> tuple[EapServerMethod, EapPeerMethod]:
    p = pki()
    client_cert = kind == "tls"
    sconf = TlsServerConfig(p.server.chain_pem, p.server.key_pem, (p.ca.cert_pem,),
                            max_version=version, require_client_cert=client_cert,
                            fragment_size=300)
    pconf = TlsPeerConfig((p.ca.cert_pem,), p.client.chain_pem, p.client.key_pem,
                          max_version=version, fragment_size=300)
    inner_s = ((26, mschapv2_server_factory(USERS)),)
    inner_p: tuple[tuple[int, Callable[[], EapPeerMethod]], ...] = (
        (26, lambda: MsChapV2PeerMethod(b"bob", "pw")),
    )
    if kind == "tls":
        return EapTlsServer(sconf, b"alice@example.com"), EapTlsPeer(pconf)
    if kind == "ttls":
        return (EapTtlsServer(TtlsServerConfig(sconf, inner_s), b"anon"),
                EapTtlsPeer(TtlsPeerConfig(pconf, b"bob", eap_methods=inner_p)))
    return (EapPeapServer(PeapServerConfig(sconf, inner_s), b"anon"),
            EapPeapPeer(PeapPeerConfig(pconf, b"bob", inner_p)))


junk = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=40).map(lambda b: b"\x00" + b),
    st.binary(max_size=40).map(lambda b: b"\x80\x00\x00\x00\x10" + b),
    st.binary(min_size=5, max_size=40).map(lambda b: b"\x00\x17\x03\x03" + b),
    st.sampled_from([b"\x00", b"\x20", b"\x40", b"\xc0\x00\x01\x00\x00x", b"\x01"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["tls", "ttls", "peap"]),
    version=st.sampled_from([TlsVersion.TLS1_2, TlsVersion.TLS1_3]),
    at=st.integers(min_value=0, max_value=30),
    to_server=st.booleans(),
    data=junk,
)
def test_junk_anywhere(kind: str, version: TlsVersion, at: int, to_server: bool,
                       data: bytes) -> None:
    server, peer = make(kind, version)
    request = server.start()
    for _ in range(at):
        pstep = peer.receive(request)
        if pstep.decision is not Decision.CONTINUE or pstep.reply is None:
            break
        sstep = server.receive(pstep.reply)
        if sstep.decision is not Decision.CONTINUE or sstep.reply is None:
            break
        request = sstep.reply
    step = server.receive(data) if to_server else peer.receive(data)
    assert isinstance(step, Step)
    if step.decision is Decision.FAILURE:
        assert (server if to_server else peer).failure_reason
    # And the other side keeps working or fails cleanly too.
    again = server.receive(b"\x00") if to_server else peer.receive(b"\x00")
    assert isinstance(again, Step)
