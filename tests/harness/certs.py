"""Certificate factory for tests, built on ``cryptography``.

Makes self-signed root CAs, intermediate CAs and end-entity (server/client) certificates with
RSA, ECDSA (P-256, P-384) or Ed25519 keys, SANs (DNS, e-mail, IP), chosen extended key usages
and chosen validity, so negative tests (expired, not yet valid, wrong EKU, issued by another
CA) are one call each::

    factory = CertFactory(tmp_path)
    root = factory.ca("root")
    sub = factory.ca("sub", parent=root)
    gw = factory.issue(sub, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    old = factory.expired(root, "old.test")

Every :class:`Issued` is also written to ``<directory>/<name>.crt`` (PEM certificate) and
``<directory>/<name>.key`` (PEM PKCS#8, unencrypted); ``<name>.chain.pem`` holds the
certificate followed by its intermediates (not the root).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "EKU_OIDS",
    "KEY_TYPES",
    "CertFactory",
    "EkuName",
    "Issued",
    "IssuedCrl",
    "KeyType",
    "PrivateKey",
    "verify_chain",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

KeyType = Literal["ecdsa", "ecdsa-p256", "ecdsa-p384", "rsa", "ed25519"]
"""``ecdsa`` is P-256; ``rsa`` takes its size from ``rsa_bits``."""

KEY_TYPES: tuple[str, ...] = ("ecdsa", "ecdsa-p256", "ecdsa-p384", "rsa", "ed25519")

EkuName = Literal["serverAuth", "clientAuth", "codeSigning", "emailProtection", "ocspSigning"]

EKU_OIDS: dict[str, x509.ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ocspSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ORG = "nea-gateway tests"


@dataclass(frozen=True)
class Issued:
    """A certificate, its private key, and where both were written."""

    name: str
    cert: x509.Certificate
    key: PrivateKey
    cert_pem: bytes
    key_pem: bytes
    """PEM, PKCS#8, unencrypted."""
    cert_path: Path
    key_path: Path
    chain_pem: bytes
    """This certificate followed by its intermediate CAs (PEM); never the root."""
    chain: tuple[x509.Certificate, ...]
    """Same as ``chain_pem``, parsed: this certificate first, then the intermediates."""
    root: x509.Certificate
    """The self-signed root at the top of the chain (``cert`` itself for a root CA)."""
    is_ca: bool
    key_type: str

    @property
    def chain_path(self) -> Path:
        """``<name>.chain.pem`` next to ``cert_path``."""
        return self.cert_path.with_name(f"{self.name}.chain.pem")

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo, DER."""
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def swanctl_key_dir(self) -> str:
        """The swanctl.d sub-directory charon reads this key type from."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            return "rsa"
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return "ecdsa"
        return "pkcs8"


@dataclass(frozen=True)
class IssuedCrl:
    """A CRL signed by a CA of the factory, written to ``<ca name>.crl.pem`` (and ``.crl``, DER)."""

    crl: x509.CertificateRevocationList
    pem: bytes
    der: bytes
    path: Path
    der_path: Path


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _generate_key(key_type: str, rsa_bits: int) -> PrivateKey:
    if key_type == "rsa":
        if rsa_bits < 1024:
            raise ValueError(f"rsa_bits {rsa_bits} too small")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if key_type in ("ecdsa", "ecdsa-p256"):
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key_type {key_type!r}; expected one of {KEY_TYPES}")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _eku_oids(eku: Iterable[str]) -> list[x509.ObjectIdentifier]:
    oids = []
    for item in eku:
        try:
            oids.append(EKU_OIDS[item])
        except KeyError:
            raise ValueError(f"unknown EKU {item!r}; expected one of {sorted(EKU_OIDS)}") from None
    return oids


class CertFactory:
    """Issues certificates into ``directory`` (created if missing).

    Names must be unique per factory: each one becomes a file name, and silently overwriting a
    certificate another part of the test still points at would hide mistakes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._issued: dict[str, Issued] = {}

    # -- public API ----------------------------------------------------------------------

    def ca(
        self,
        name: str,
        key_type: str = "ecdsa",
        rsa_bits: int = 2048,
        parent: Issued | None = None,
        *,
        path_length: int | None = None,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        subject: x509.Name | None = None,
    ) -> Issued:
        """A root CA (``parent=None``, self-signed) or an intermediate CA issued by ``parent``.

        Validity defaults to one year ago .. ten years ahead, so end-entity certificates with
        shifted dates (``expired``, ``not_yet_valid``) still sit inside their CA's validity.

        The subject is ``O=nea-gateway tests, CN=<name>`` unless ``subject`` is given.
        """
        if parent is not None and not parent.is_ca:
            raise ValueError(f"parent {parent.name!r} is not a CA")
        key = _generate_key(key_type, rsa_bits)
        subject = subject if subject is not None else _name(name)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _dt.timedelta(days=365))
            .not_valid_after(not_after or now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if parent is None:
            cert = builder.issuer_name(subject).sign(key, _signature_hash(key))
            return self._store(name, cert, key, intermediates=(), root=None, key_type=key_type)
        builder = builder.issuer_name(parent.cert.subject).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
        cert = builder.sign(parent.key, _signature_hash(parent.key))
        return self._store(
            name,
            cert,
            key,
            intermediates=self._intermediates_of(parent),
            root=parent.root,
            key_type=key_type,
        )

    def issue(
        self,
        issuer: Issued,
        cn: str,
        *,
        san_dns: Sequence[str] = (),
        san_email: Sequence[str] = (),
        san_ip: Sequence[str] = (),
        eku: Sequence[str] = ("serverAuth", "clientAuth"),
        key_type: str = "ecdsa",
        rsa_bits: int = 2048,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        name: str | None = None,
        subject: x509.Name | None = None,
    ) -> Issued:
        """An end-entity certificate for ``cn`` issued by ``issuer``.

        ``eku=()`` leaves the ExtendedKeyUsage extension out entirely. ``name`` (default:
        ``cn``) is the file stem; ``subject`` replaces the default DN
        ``O=nea-gateway tests, CN=<cn>``. Validity defaults to one hour ago .. one year ahead.
        """
        if not issuer.is_ca:
            raise ValueError(f"issuer {issuer.name!r} is not a CA")
        key = _generate_key(key_type, rsa_bits)
        now = _now()
        subject = subject if subject is not None else _name(cn)
        is_rsa = isinstance(key, rsa.RSAPrivateKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _dt.timedelta(hours=1))
            .not_valid_after(not_after or now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=isinstance(key, ec.EllipticCurvePrivateKey),
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        )
        general_names: list[x509.GeneralName] = [x509.DNSName(d) for d in san_dns]
        general_names += [x509.RFC822Name(e) for e in san_email]
        general_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in san_ip]
        if general_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(general_names), critical=False
            )
        oids = _eku_oids(eku)
        if oids:
            builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
        cert = builder.sign(issuer.key, _signature_hash(issuer.key))
        return self._store(
            name or cn,
            cert,
            key,
            intermediates=self._intermediates_of(issuer),
            root=issuer.root,
            key_type=key_type,
        )

    # -- negative-test variants ----------------------------------------------------------

    def expired(self, issuer: Issued, cn: str, **kwargs: object) -> Issued:
        """Valid from 30 days ago until yesterday."""
        now = _now()
        return self.issue(
            issuer,
            cn,
            not_before=now - _dt.timedelta(days=30),
            not_after=now - _dt.timedelta(days=1),
            **kwargs,  # type: ignore[arg-type]
        )

    def not_yet_valid(self, issuer: Issued, cn: str, **kwargs: object) -> Issued:
        """Valid from tomorrow for a year."""
        now = _now()
        return self.issue(
            issuer,
            cn,
            not_before=now + _dt.timedelta(days=1),
            not_after=now + _dt.timedelta(days=366),
            **kwargs,  # type: ignore[arg-type]
        )

    def crl(
        self,
        issuer: Issued,
        revoked: Sequence[Issued | int] = (),
        *,
        last_update: _dt.datetime | None = None,
        next_update: _dt.datetime | None = None,
        number: int = 1,
    ) -> IssuedCrl:
        """A CRL by ``issuer`` revoking ``revoked`` (certificates or serial numbers).

        Defaults: issued an hour ago, next update in a week. Writing a second CRL for the same
        CA replaces the files (a newer CRL supersedes the old one).
        """
        if not issuer.is_ca:
            raise ValueError(f"issuer {issuer.name!r} is not a CA")
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(last_update or now - _dt.timedelta(hours=1))
            .next_update(next_update or now + _dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        )
        for item in revoked:
            serial = item.cert.serial_number if isinstance(item, Issued) else item
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - _dt.timedelta(minutes=30))
                .build()
            )
        crl = builder.sign(issuer.key, _signature_hash(issuer.key))
        pem = crl.public_bytes(serialization.Encoding.PEM)
        der = crl.public_bytes(serialization.Encoding.DER)
        path = self.directory / f"{issuer.name}.crl.pem"
        der_path = self.directory / f"{issuer.name}.crl"
        path.write_bytes(pem)
        der_path.write_bytes(der)
        return IssuedCrl(crl=crl, pem=pem, der=der, path=path, der_path=der_path)

    def get(self, name: str) -> Issued:
        return self._issued[name]

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _intermediates_of(issuer: Issued) -> tuple[x509.Certificate, ...]:
        # An issuer's own chain is (issuer, its intermediates...); a root contributes nothing.
        if issuer.cert == issuer.root:
            return ()
        return issuer.chain

    def _store(
        self,
        name: str,
        cert: x509.Certificate,
        key: PrivateKey,
        *,
        intermediates: tuple[x509.Certificate, ...],
        root: x509.Certificate | None,
        key_type: str,
    ) -> Issued:
        if not _NAME_RE.match(name):
            raise ValueError(f"name {name!r} is not usable as a file name")
        if name in self._issued:
            raise ValueError(f"name {name!r} already issued by this factory")
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _key_pem(key)
        chain = (cert, *intermediates)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        (self.directory / f"{name}.chain.pem").write_bytes(chain_pem)
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        issued = Issued(
            name=name,
            cert=cert,
            key=key,
            cert_pem=cert_pem,
            key_pem=key_pem,
            cert_path=cert_path,
            key_path=key_path,
            chain_pem=chain_pem,
            chain=chain,
            root=root if root is not None else cert,
            is_ca=bc.ca,
            key_type=key_type,
        )
        self._issued[name] = issued
        return issued


def verify_chain(
    leaf: Issued | x509.Certificate,
    trust: Sequence[x509.Certificate],
    *,
    intermediates: Sequence[x509.Certificate] = (),
    at: _dt.datetime | None = None,
    server_name: str | None = None,
) -> None:
    """Verify ``leaf`` up to one of ``trust`` with cryptography's X.509 path builder.

    cryptography's verifier implements the RFC 5280 / CA/B web profile, which forbids Ed25519
    keys; check Ed25519 chains with ``cert.verify_directly_issued_by(issuer)`` instead.

    Raises ``cryptography.x509.verification.VerificationError`` on failure. With
    ``server_name`` the server profile is used (EKU serverAuth, SAN match), otherwise the
    client profile (EKU clientAuth). For an :class:`Issued` leaf its own intermediates are
    added.
    """
    from cryptography.x509.verification import PolicyBuilder, Store

    if isinstance(leaf, Issued):
        intermediates = (*leaf.chain[1:], *intermediates)
        leaf = leaf.cert
    builder = PolicyBuilder().store(Store(list(trust))).time(at or _now())
    if server_name is not None:
        dns = x509.DNSName(server_name)
        builder.build_server_verifier(dns).verify(leaf, list(intermediates))
    else:
        builder.build_client_verifier().verify(leaf, list(intermediates))
