"""A throw-away PKI for the demo: one CA, the gateway's certificate, client certificates.

ECDSA P-256 keys (quick to make), PEM files (PKCS#8 keys, unencrypted: demo material only)
written under the demo's directory.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DemoPki", "Issued"]


@dataclass(frozen=True)
class Issued:
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nea-gateway demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class DemoPki:
    """``DemoPki(directory)`` makes the CA at once; :meth:`issue` makes end-entity certs."""

    def __init__(self, directory: Path, *, days: int = 30) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.now = _dt.datetime.now(_dt.UTC)
        self.days = days
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder("nea-gateway demo CA", key.public_key())
            .issuer_name(_name("nea-gateway demo CA"))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        self.ca = self._write("ca", cert, key)

    def _builder(self, cn: str, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - _dt.timedelta(minutes=5))
            .not_valid_after(self.now + _dt.timedelta(days=self.days))
        )

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
        cert_path = self.directory / f"{stem}.crt"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(stem, cert, key, cert_path, key_path)

    def issue(
        self,
        stem: str,
        cn: str,
        *,
        dns: tuple[str, ...] = (),
        emails: tuple[str, ...] = (),
        server: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.RFC822Name(e) for e in emails]
        builder = (
            self._builder(cn, key.public_key())
            .issuer_name(self.ca.cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.ca.key, hashes.SHA256())
        return self._write(stem, cert, key)
