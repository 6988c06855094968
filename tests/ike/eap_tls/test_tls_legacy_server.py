"""TlsPeerConfig.allow_legacy_server_connect: a TLS 1.2 server without RFC 5746 support.

strongSwan's libtls (charon as EAP server) answers without the renegotiation_info extension.
An OpenSSL server does that too when the ClientHello carries neither the extension nor the
SCSV (RFC 5746, 3.6), so the test strips both from the peer's ClientHello on the way to an
OpenSSL server and looks at how the peer takes the ServerHello.  (The stripped ClientHello
breaks the Finished transcript later; only the ServerHello check matters here.)
"""

from __future__ import annotations

import struct

import pytest
from OpenSSL import SSL

from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import Pki, make_pki

RENEGOTIATION_INFO = 0xFF01  # RFC 5746, 3.2
EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746, 3.3


@pytest.fixture
def pki(cert_factory: CertFactory) -> Pki:
    return make_pki(cert_factory)


def _strip_rfc5746(record: bytes) -> bytes:
    """The ClientHello record without the renegotiation_info extension and the SCSV."""
    assert record[0] == 22 and record[5] == 1  # handshake record, ClientHello
    body = record[9:]
    pos = 2 + 32
    head = body[:pos]
    sid_len = body[pos]
    head += body[pos : pos + 1 + sid_len]
    pos += 1 + sid_len
    (cs_len,) = struct.unpack_from("!H", body, pos)
    suites = [body[pos + 2 + i : pos + 4 + i] for i in range(0, cs_len, 2)]
    kept = b"".join(c for c in suites if c != struct.pack("!H", EMPTY_RENEGOTIATION_INFO_SCSV))
    head += struct.pack("!H", len(kept)) + kept
    pos += 2 + cs_len
    comp_len = body[pos]
    head += body[pos : pos + 1 + comp_len]
    pos += 1 + comp_len
    (ext_len,) = struct.unpack_from("!H", body, pos)
    exts, p, end = b"", pos + 2, pos + 2 + ext_len
    assert end == len(body)
    while p < end:
        etype, elen = struct.unpack_from("!HH", body, p)
        if etype != RENEGOTIATION_INFO:
            exts += body[p : p + 4 + elen]
        p += 4 + elen
    hello = head + struct.pack("!H", len(exts)) + exts
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return record[:3] + struct.pack("!H", len(handshake)) + handshake


def _peer_after_server_hello(pki: Pki, *, legacy: bool) -> SSL.Connection:
    server_cfg = TlsServerConfig(
        pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
        max_version=TlsVersion.TLS1_2, require_client_cert=False,
    )
    peer_cfg = TlsPeerConfig(
        (pki.ca.cert_pem,), server_name="gw.test", max_version=TlsVersion.TLS1_2,
        allow_legacy_server_connect=legacy,
    )
    server = SSL.Connection(server_cfg.context(), None)
    server.set_accept_state()
    peer = SSL.Connection(peer_cfg.context(), None)
    peer.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        peer.do_handshake()
    hello = peer.bio_read(65536)
    server.bio_write(_strip_rfc5746(hello))
    with pytest.raises(SSL.WantReadError):
        server.do_handshake()
    flight = server.bio_read(65536)
    assert struct.pack("!H", RENEGOTIATION_INFO) not in flight[:200]  # no RI in ServerHello
    peer.bio_write(flight)
    return peer


def test_default_refuses_server_without_renegotiation_info(pki: Pki) -> None:
    assert not TlsPeerConfig((pki.ca.cert_pem,)).context().set_options(0) & (
        SSL.OP_LEGACY_SERVER_CONNECT
    )
    peer = _peer_after_server_hello(pki, legacy=False)
    with pytest.raises(SSL.Error, match="unsafe legacy renegotiation"):
        peer.do_handshake()


def test_option_accepts_server_without_renegotiation_info(pki: Pki) -> None:
    peer = _peer_after_server_hello(pki, legacy=True)
    # The peer takes the whole server flight and answers with its own (key exchange,
    # ChangeCipherSpec, Finished); it then waits for the server's Finished.
    with pytest.raises(SSL.WantReadError):
        peer.do_handshake()
    assert peer.bio_read(65536)


def test_option_keeps_renegotiation_refused(pki: Pki) -> None:
    options = TlsPeerConfig(
        (pki.ca.cert_pem,), allow_legacy_server_connect=True
    ).context().set_options(0)
    assert options & SSL.OP_LEGACY_SERVER_CONNECT
    assert options & SSL.OP_NO_RENEGOTIATION
