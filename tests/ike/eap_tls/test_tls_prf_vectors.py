"""Known answers for the TLS PRF (ike.eap_tls.prf)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ike.eap.method import Decision
from ike.eap_tls.method import EapTlsPeer, EapTlsServer
from ike.eap_tls.prf import tls10_prf, tls12_prf
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion
from tests.harness.certs import CertFactory
from tests.ike.eap_tls.eap_tls_helpers import make_pki, run_pair

# NIST CAVP SP 800-135 TLS KDF component vectors (csrc.nist.gov .../800-135testvectors/
# tls.zip), [TLS 1.2, SHA-256], [TlsPrf1_2HmacSha256] COUNT = 0 (also used by BouncyCastle's
# PRF tests): pre-master secret -> master secret (label "master secret", clientHello ||
# serverHello random) and master secret -> key block (label "key expansion",
# server_random || client_random, the whole 1024-bit key block).
CAVS_PMS = bytes.fromhex(
    "f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bcadb386b411fd4fe4313a604fce6c17fbc"
)
CAVS_HELLO_CLIENT = bytes.fromhex(
    "36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c"
)
CAVS_HELLO_SERVER = bytes.fromhex(
    "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce"
)
CAVS_MASTER = bytes.fromhex(
    "202c88c00f84a17a20027079604787461176455539e705be730890602c289a5001e34eeb3a043e5d52a65e66125188bf"
)
CAVS_CLIENT_RANDOM = bytes.fromhex(
    "62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616"
)
CAVS_SERVER_RANDOM = bytes.fromhex(
    "ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868"
)
CAVS_KEY_BLOCK = bytes.fromhex(
    "d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531016a2530c51a3a0f"
    "7e1d6590d0f0566b2f387f8d11fd4f731cdd572d2eae927f6f2f81410b25e6960be68985add6c384"
    "45ad9f8c64bf8068bf9a6679485d966f1ad6f68b43495b10a683755ea2b858d70ccac7ec8b053c6b"
    "d41ca299d4e51928"
)


def test_tls12_prf_master_secret_cavs() -> None:
    out = tls12_prf(CAVS_PMS, b"master secret", CAVS_HELLO_CLIENT + CAVS_HELLO_SERVER, 48)
    assert out == CAVS_MASTER


def test_tls12_prf_key_expansion_cavs() -> None:
    out = tls12_prf(
        CAVS_MASTER, b"key expansion", CAVS_SERVER_RANDOM + CAVS_CLIENT_RANDOM,
        len(CAVS_KEY_BLOCK),
    )
    assert out == CAVS_KEY_BLOCK


def test_tls12_prf_test_label_vector() -> None:
    # TLS 1.2 PRF (SHA-256) vector posted to the IETF TLS list (msg03416,
    # https://www.ietf.org/mail-archive/web/tls/current/msg03416.html).
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    expected = bytes.fromhex(
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9"
        "c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789ba"
        "a48082d122ee42c5a72e5a5110fff70187347b66"
    )
    assert tls12_prf(secret, b"test label", seed, 100) == expected


def test_prf_lengths_are_exact() -> None:
    for n in (0, 1, 31, 32, 33, 200):
        assert len(tls12_prf(b"k", b"l", b"s", n)) == n
        assert len(tls10_prf(b"k" * 7, b"l", b"s", n)) == n
    with pytest.raises(ValueError):
        tls12_prf(b"k", b"l", b"s", -1)


def test_prf_agrees_with_openssl_exporter(tmp_path: Path) -> None:
    """Our PRF over a live TLS 1.2 session's master secret equals OpenSSL's RFC 5705
    exporter for "client EAP encryption" (which is exactly the EAP-TLS key material)."""
    pki = make_pki(CertFactory(tmp_path))
    server = EapTlsServer(
        TlsServerConfig(pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
                        max_version=TlsVersion.TLS1_2),
        b"alice@example.com",
    )
    peer = EapTlsPeer(TlsPeerConfig((pki.ca.cert_pem,), pki.client.chain_pem,
                                    pki.client.key_pem, max_version=TlsVersion.TLS1_2))
    assert run_pair(server, peer).server is Decision.SUCCESS
    tls = server.tls
    if "SHA384" in (tls.cipher_name() or ""):
        from cryptography.hazmat.primitives import hashes

        algorithm: hashes.HashAlgorithm | None = hashes.SHA384()
    else:
        algorithm = None
    ours = tls12_prf(
        tls.master_key(), b"client EAP encryption", tls.client_random() + tls.server_random(),
        128, algorithm,
    )
    assert ours == (server.msk() or b"") + (server.emsk() or b"")
