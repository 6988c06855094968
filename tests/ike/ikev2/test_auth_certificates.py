"""AUTH computation and certificate checks: RFC 7427 and classic signature methods, chain
validation (expiry, foreign CA, intermediates) and identity-to-certificate matching."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ike import auth
from ike.config import Identity
from ike.constants import AuthMethod, HashAlgorithm, PrfId
from ike.crypto import PRF_ALGS
from ike.errors import AuthenticationFailed

NOW = dt.datetime.now(dt.UTC)
OCTETS = b"RealMessage1|NonceRData|MACedIDForI"


@pytest.mark.parametrize("key_type", ["ecdsa", "ecdsa-p384", "rsa", "ed25519"])
def test_rfc7427_signatures_roundtrip(cert_factory: Any, key_type: str) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), key_type=key_type)
    method, data = auth.sign(leaf.key, OCTETS, auth.SUPPORTED_HASHES)
    assert method == AuthMethod.DIGITAL_SIGNATURE
    auth.verify_signature(leaf.cert, method, data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        auth.verify_signature(leaf.cert, method, data, OCTETS + b"x")


@pytest.mark.parametrize(
    ("key_type", "method"),
    [
        ("ecdsa", AuthMethod.ECDSA_SHA256_P256),
        ("ecdsa-p384", AuthMethod.ECDSA_SHA384_P384),
        ("rsa", AuthMethod.RSA_SIG),
    ],
)
def test_classic_methods_without_signature_hash_algorithms(
    cert_factory: Any, key_type: str, method: int
) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(root, "gw.test", key_type=key_type)
    got, data = auth.sign(leaf.key, OCTETS, None)
    assert got == method
    auth.verify_signature(leaf.cert, got, data, OCTETS)
    other = cert_factory.issue(root, "x.test", key_type=key_type)
    with pytest.raises(AuthenticationFailed):
        auth.verify_signature(other.cert, got, data, OCTETS)


def test_hash_negotiation_follows_the_peer(cert_factory: Any) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(root, "gw.test")
    _, data = auth.sign(leaf.key, OCTETS, (HashAlgorithm.SHA2_512,))
    assert data[1 : 1 + data[0]] == bytes.fromhex("300a06082a8648ce3d040304")
    with pytest.raises(AuthenticationFailed):
        auth.sign(leaf.key, OCTETS, (HashAlgorithm.SHA1,))


def test_psk_auth_is_prf_of_prf() -> None:
    prf = PRF_ALGS[PrfId.PRF_HMAC_SHA2_256]
    want = prf(prf(b"secret", b"Key Pad for IKEv2"), OCTETS)
    assert auth.psk_auth(prf, b"secret", OCTETS) == want
    assert auth.verify_psk(prf, b"secret", OCTETS, want)
    assert not auth.verify_psk(prf, b"Secret", OCTETS, want)


def test_chain_validation(cert_factory: Any) -> None:
    root = cert_factory.ca("root")
    sub = cert_factory.ca("sub", parent=root)
    leaf = cert_factory.issue(sub, "gw.test", san_dns=("gw.test",))
    auth.validate_chain(leaf.cert, (sub.cert,), (root.cert,), NOW)
    with pytest.raises(AuthenticationFailed, match="no path"):
        auth.validate_chain(leaf.cert, (), (root.cert,), NOW)
    with pytest.raises(AuthenticationFailed, match="no path"):
        auth.validate_chain(leaf.cert, (sub.cert,), (cert_factory.ca("other").cert,), NOW)
    with pytest.raises(AuthenticationFailed, match="expired"):
        auth.validate_chain(cert_factory.expired(root, "old.test").cert, (), (root.cert,), NOW)
    with pytest.raises(AuthenticationFailed, match="not yet"):
        auth.validate_chain(
            cert_factory.not_yet_valid(root, "new.test").cert, (), (root.cert,), NOW
        )
    # an end-entity certificate cannot act as an intermediate CA
    fake_ca = cert_factory.issue(root, "notaca.test")
    with pytest.raises(AuthenticationFailed):
        auth.validate_chain(leaf.cert, (fake_ca.cert,), (root.cert,), NOW)
    # wall clock passed in: the same chain is invalid in 50 years
    with pytest.raises(AuthenticationFailed):
        auth.validate_chain(leaf.cert, (sub.cert,), (root.cert,), NOW + dt.timedelta(days=365 * 50))


def test_identity_matching(cert_factory: Any) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(
        root, "gw.test", san_dns=("gw.test",), san_email=("a@b.test",), san_ip=("192.0.2.1",)
    )
    assert auth.identity_matches_cert(Identity.parse("gw.test"), leaf.cert)
    assert auth.identity_matches_cert(Identity.parse("GW.test"), leaf.cert)
    assert auth.identity_matches_cert(Identity.parse("a@b.test"), leaf.cert)
    assert auth.identity_matches_cert(Identity.parse("192.0.2.1"), leaf.cert)
    assert auth.identity_matches_cert(Identity.from_name(leaf.cert.subject), leaf.cert)
    assert not auth.identity_matches_cert(Identity.parse("other.test"), leaf.cert)
    assert not auth.identity_matches_cert(Identity.parse("192.0.2.9"), leaf.cert)


def test_certreq_is_sha1_of_the_spki(cert_factory: Any) -> None:
    import hashlib

    root = cert_factory.ca("root")
    assert auth.certreq_data((root.cert,)) == hashlib.sha1(root.public_key_der).digest()
