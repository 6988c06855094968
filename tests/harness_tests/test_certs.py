"""The certificate factory makes what it is asked for, and the negatives really fail."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import VerificationError

from tests.harness.certs import CertFactory, verify_chain


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier] | None:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def test_root_is_self_signed_ca(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    assert root.is_ca
    assert root.cert.issuer == root.cert.subject
    root.cert.verify_directly_issued_by(root.cert)
    bc = root.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert root.root == root.cert
    assert root.chain_pem == root.cert_pem
    assert root.cert_path.read_bytes() == root.cert_pem
    assert root.key_path.read_bytes() == root.key_pem
    assert root.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted


def test_chain_through_intermediate_verifies(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root", key_type="rsa")
    sub = cert_factory.ca("sub", parent=root)
    gw = cert_factory.issue(sub, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    assert gw.chain == (gw.cert, sub.cert)
    assert gw.chain_pem == gw.cert_pem + sub.cert_pem
    assert gw.chain_path.read_bytes() == gw.chain_pem
    assert gw.root == root.cert
    verify_chain(gw, [root.cert], server_name="gw.test")
    # Without the intermediate there is no path.
    with pytest.raises(VerificationError):
        verify_chain(gw.cert, [root.cert], server_name="gw.test")


def test_issued_by_other_ca_fails(cert_factory: CertFactory) -> None:
    good = cert_factory.ca("good")
    evil = cert_factory.ca("evil")
    cl = cert_factory.issue(evil, "cl.test", san_email=("cl@example.test",))
    verify_chain(cl, [evil.cert])
    with pytest.raises(VerificationError):
        verify_chain(cl, [good.cert])


def test_expired_and_not_yet_valid(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    now = dt.datetime.now(dt.UTC)
    old = cert_factory.expired(root, "old.test", san_dns=("old.test",))
    assert old.cert.not_valid_after_utc < now
    new = cert_factory.not_yet_valid(root, "new.test", san_dns=("new.test",))
    assert new.cert.not_valid_before_utc > now
    for leaf, name in ((old, "old.test"), (new, "new.test")):
        with pytest.raises(VerificationError):
            verify_chain(leaf, [root.cert], server_name=name)
    # At a time inside their validity they do verify: only the dates are wrong.
    verify_chain(old, [root.cert], server_name="old.test", at=now - dt.timedelta(days=2))
    verify_chain(new, [root.cert], server_name="new.test", at=now + dt.timedelta(days=2))


@pytest.mark.parametrize(
    ("eku", "expected"),
    [
        (
            ("serverAuth", "clientAuth"),
            {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH},
        ),
        (("serverAuth",), {ExtendedKeyUsageOID.SERVER_AUTH}),
        (("clientAuth",), {ExtendedKeyUsageOID.CLIENT_AUTH}),
        ((), None),
    ],
)
def test_eku_as_asked(cert_factory: CertFactory, eku: tuple[str, ...], expected: object) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(root, "x.test", eku=eku)
    assert _eku(leaf.cert) == expected


def test_wrong_eku_fails_server_profile(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    client_only = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), eku=("clientAuth",))
    with pytest.raises(VerificationError):
        verify_chain(client_only, [root.cert], server_name="gw.test")
    server_only = cert_factory.issue(root, "cl.test", san_dns=("cl.test",), eku=("serverAuth",))
    with pytest.raises(VerificationError):
        verify_chain(server_only, [root.cert])


def test_sans_and_subject(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    leaf = cert_factory.issue(
        root,
        "host.test",
        san_dns=("host.test", "alt.test"),
        san_email=("user@example.test",),
        san_ip=("192.0.2.1", "2001:db8::1"),
    )
    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["host.test", "alt.test"]
    assert san.get_values_for_type(x509.RFC822Name) == ["user@example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.1"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "host.test"
    assert leaf.cert.issuer == root.cert.subject
    no_san = cert_factory.issue(root, "bare.test")
    with pytest.raises(x509.ExtensionNotFound):
        no_san.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    ("key_type", "rsa_bits", "check"),
    [
        (
            "ecdsa",
            2048,
            lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.key_size == 256,
        ),
        (
            "ecdsa-p384",
            2048,
            lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.key_size == 384,
        ),
        ("rsa", 2048, lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048),
        ("rsa", 3072, lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == 3072),
        ("ed25519", 2048, lambda k: isinstance(k, ed25519.Ed25519PrivateKey)),
    ],
)
def test_key_types(cert_factory: CertFactory, key_type: str, rsa_bits: int, check) -> None:  # type: ignore[no-untyped-def]
    ca = cert_factory.ca("ca", key_type=key_type, rsa_bits=rsa_bits)
    leaf = cert_factory.issue(ca, "leaf.test", key_type=key_type, rsa_bits=rsa_bits)
    assert check(ca.key) and check(leaf.key)
    assert leaf.cert.public_key() == leaf.key.public_key()
    leaf.cert.verify_directly_issued_by(ca.cert)


def test_names_unique_and_sane(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    with pytest.raises(ValueError, match="already issued"):
        cert_factory.ca("root")
    with pytest.raises(ValueError, match="file name"):
        cert_factory.issue(root, "../escape")
    with pytest.raises(ValueError, match="not a CA"):
        cert_factory.issue(cert_factory.issue(root, "leaf.test"), "x.test")
    with pytest.raises(ValueError, match="unknown EKU"):
        cert_factory.issue(root, "y.test", eku=("serverauth",))


def test_crl_revokes_what_it_was_given(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root")
    bad = cert_factory.issue(root, "bad.test")
    good = cert_factory.issue(root, "good.test")
    issued = cert_factory.crl(root, revoked=(bad, 12345), number=7)
    crl = x509.load_pem_x509_crl(issued.path.read_bytes())
    assert crl.is_signature_valid(root.key.public_key())
    assert crl.get_revoked_certificate_by_serial_number(bad.cert.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(12345) is not None
    assert crl.get_revoked_certificate_by_serial_number(good.cert.serial_number) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert x509.load_der_x509_crl(issued.der_path.read_bytes()) == crl
    other = cert_factory.ca("other")
    assert not crl.is_signature_valid(other.key.public_key())


def test_rsa_4096_leaf_under_ecdsa_ca(cert_factory: CertFactory) -> None:
    ca = cert_factory.ca("ca")
    leaf = cert_factory.issue(ca, "big.test", key_type="rsa", rsa_bits=4096)
    assert isinstance(leaf.key, rsa.RSAPrivateKey) and leaf.key.key_size == 4096
    assert leaf.swanctl_key_dir == "rsa"
    leaf.cert.verify_directly_issued_by(ca.cert)
