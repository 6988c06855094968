"""IKE_AUTH authentication (RFC 7296, 2.15 and 2.16; RFC 4754; RFC 7427) and certificate
chain validation with identity matching (RFC 7296, 3.5 and 4; RFC 4945, 3.1)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ike.config import Identity, PrivateKey
from ike.constants import AuthMethod, HashAlgorithm, IdType
from ike.crypto import PrfAlg
from ike.errors import AuthenticationFailed

__all__ = [
    "KEY_PAD",
    "SUPPORTED_HASHES",
    "certreq_data",
    "identity_matches_cert",
    "psk_auth",
    "sign",
    "signed_octets",
    "validate_chain",
    "verify_psk",
    "verify_signature",
]

KEY_PAD = b"Key Pad for IKEv2"
"""RFC 7296, 2.15."""

SUPPORTED_HASHES = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)
"""What this side announces in SIGNATURE_HASH_ALGORITHMS (RFC 7427, 4)."""


def signed_octets(
    real_message: bytes, peer_nonce: bytes, prf: PrfAlg, sk_p: bytes, id_body: bytes
) -> bytes:
    """RFC 7296, 2.15: RealMessage | NonceData of the peer | prf(SK_p, RestOfIDPayload)."""
    return real_message + peer_nonce + prf(sk_p, id_body)


def psk_auth(prf: PrfAlg, secret: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>); also EAP's MSK."""
    return prf(prf(secret, KEY_PAD), octets)


def verify_psk(prf: PrfAlg, secret: bytes, octets: bytes, received: bytes) -> bool:
    return hmac.compare_digest(psk_auth(prf, secret, octets), received)


# --------------------------------------------------------------------------------------------
# Signatures

_HASHES: dict[int, hashes.HashAlgorithm] = {
    HashAlgorithm.SHA2_256: hashes.SHA256(),
    HashAlgorithm.SHA2_384: hashes.SHA384(),
    HashAlgorithm.SHA2_512: hashes.SHA512(),
}

# RFC 7427, Appendix A: DER AlgorithmIdentifiers.
_ALG_IDS: dict[tuple[str, int], bytes] = {
    ("rsa", HashAlgorithm.SHA2_256): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("rsa", HashAlgorithm.SHA2_384): bytes.fromhex("300d06092a864886f70d01010c0500"),
    ("rsa", HashAlgorithm.SHA2_512): bytes.fromhex("300d06092a864886f70d01010d0500"),
    ("ecdsa", HashAlgorithm.SHA2_256): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ecdsa", HashAlgorithm.SHA2_384): bytes.fromhex("300a06082a8648ce3d040303"),
    ("ecdsa", HashAlgorithm.SHA2_512): bytes.fromhex("300a06082a8648ce3d040304"),
    ("ed25519", HashAlgorithm.IDENTITY): bytes.fromhex("300506032b6570"),
}
_BY_ALG_ID = {v: k for k, v in _ALG_IDS.items()}

_CLASSIC_ECDSA: dict[int, tuple[str, hashes.HashAlgorithm, int]] = {
    AuthMethod.ECDSA_SHA256_P256: ("secp256r1", hashes.SHA256(), 32),
    AuthMethod.ECDSA_SHA384_P384: ("secp384r1", hashes.SHA384(), 48),
    AuthMethod.ECDSA_SHA512_P521: ("secp521r1", hashes.SHA512(), 66),
}


def _key_kind(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ecdsa"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise AuthenticationFailed(f"unsupported key type {type(key).__name__}")


def _ec_default_hash(curve: ec.EllipticCurve) -> int:
    return {"secp384r1": HashAlgorithm.SHA2_384, "secp521r1": HashAlgorithm.SHA2_512}.get(
        curve.name, HashAlgorithm.SHA2_256
    )


def sign(key: PrivateKey, octets: bytes, peer_hashes: tuple[int, ...] | None) -> tuple[int, bytes]:
    """Sign ``octets``; return (AUTH method, AUTH data).

    With the peer's SIGNATURE_HASH_ALGORITHMS (``peer_hashes`` not None) RFC 7427 digital
    signatures are used, else the classic methods (RSA_SIG with SHA-1 / RFC 4754 ECDSA).
    """
    kind = _key_kind(key)
    if peer_hashes is not None:
        if kind == "ed25519":
            if HashAlgorithm.IDENTITY not in peer_hashes:
                raise AuthenticationFailed("peer does not accept the Identity hash (EdDSA)")
            assert isinstance(key, ed25519.Ed25519PrivateKey)
            alg = _ALG_IDS[("ed25519", HashAlgorithm.IDENTITY)]
            return AuthMethod.DIGITAL_SIGNATURE, bytes([len(alg)]) + alg + key.sign(octets)
        want = (
            _ec_default_hash(key.curve)
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else HashAlgorithm.SHA2_256
        )
        choices = [want] + [h for h in (2, 3, 4) if h != want]
        for h in choices:
            if h in peer_hashes:
                alg = _ALG_IDS[(kind, h)]
                if isinstance(key, rsa.RSAPrivateKey):
                    sig = key.sign(octets, padding.PKCS1v15(), _HASHES[h])
                else:
                    assert isinstance(key, ec.EllipticCurvePrivateKey)
                    sig = key.sign(octets, ec.ECDSA(_HASHES[h]))
                return AuthMethod.DIGITAL_SIGNATURE, bytes([len(alg)]) + alg + sig
        raise AuthenticationFailed("no common signature hash algorithm")
    if isinstance(key, rsa.RSAPrivateKey):
        return AuthMethod.RSA_SIG, key.sign(octets, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for method, (curve, halg, size) in _CLASSIC_ECDSA.items():
            if key.curve.name == curve:
                r, s = decode_dss_signature(key.sign(octets, ec.ECDSA(halg)))
                return method, r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise AuthenticationFailed("EdDSA needs RFC 7427 (peer sent no SIGNATURE_HASH_ALGORITHMS)")


def verify_signature(cert: x509.Certificate, method: int, data: bytes, octets: bytes) -> None:
    """Verify an AUTH payload against the end-entity certificate; raise AuthenticationFailed."""
    pub = cert.public_key()
    try:
        if method == AuthMethod.DIGITAL_SIGNATURE:
            if not data:
                raise AuthenticationFailed("empty AUTH data")
            alen = data[0]
            alg_id, sig = data[1 : 1 + alen], data[1 + alen :]
            found = _BY_ALG_ID.get(alg_id)
            if found is None or len(alg_id) != alen:
                raise AuthenticationFailed("unsupported signature algorithm in AUTH")
            kind, h = found
            if kind != _key_kind(pub):
                raise AuthenticationFailed("AUTH algorithm does not fit the certificate key")
            if isinstance(pub, rsa.RSAPublicKey):
                pub.verify(sig, octets, padding.PKCS1v15(), _HASHES[h])
            elif isinstance(pub, ec.EllipticCurvePublicKey):
                pub.verify(sig, octets, ec.ECDSA(_HASHES[h]))
            elif isinstance(pub, ed25519.Ed25519PublicKey):
                pub.verify(sig, octets)
            return
        if method == AuthMethod.RSA_SIG:
            if not isinstance(pub, rsa.RSAPublicKey):
                raise AuthenticationFailed("RSA_SIG with a non-RSA certificate")
            pub.verify(data, octets, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
            return
        if method in _CLASSIC_ECDSA:
            curve, halg, size = _CLASSIC_ECDSA[method]
            if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != curve:
                raise AuthenticationFailed("ECDSA AUTH method does not fit the certificate")
            if len(data) != 2 * size:
                raise AuthenticationFailed("ECDSA signature has the wrong length")
            r = int.from_bytes(data[:size], "big")
            s = int.from_bytes(data[size:], "big")
            pub.verify(encode_dss_signature(r, s), octets, ec.ECDSA(halg))
            return
    except InvalidSignature:
        raise AuthenticationFailed("signature does not verify") from None
    raise AuthenticationFailed(f"unsupported AUTH method {method}")


# --------------------------------------------------------------------------------------------
# Certificates


def _valid_at(cert: x509.Certificate, now: _dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not bc.ca:
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(ku.key_cert_sign)


def validate_chain(
    leaf: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    anchors: tuple[x509.Certificate, ...],
    now: _dt.datetime,
    max_depth: int = 8,
) -> None:
    """Build a path from ``leaf`` through ``intermediates`` to one of ``anchors``.

    Every certificate must be valid at ``now``, every issuer a CA allowed to sign certificates
    and every signature must verify.  Raises :class:`AuthenticationFailed`.
    """
    if not _valid_at(leaf, now):
        raise AuthenticationFailed("end-entity certificate is expired or not yet valid")
    if leaf in anchors:
        return
    current = leaf
    for _ in range(max_depth):
        for anchor in anchors:
            if _issued_by(current, anchor):
                if not _valid_at(anchor, now):
                    raise AuthenticationFailed("trust anchor is expired or not yet valid")
                if not _is_ca(anchor) and anchor.subject != anchor.issuer:
                    raise AuthenticationFailed("trust anchor is not a CA")
                return
        for inter in intermediates:
            if inter is not current and _issued_by(current, inter):
                if not _is_ca(inter):
                    raise AuthenticationFailed("intermediate certificate is not a CA")
                if not _valid_at(inter, now):
                    raise AuthenticationFailed("intermediate certificate expired")
                current = inter
                break
        else:
            raise AuthenticationFailed("no path to a trusted CA")
    raise AuthenticationFailed("certificate path too long")


def identity_matches_cert(identity: Identity, cert: x509.Certificate) -> bool:
    """RFC 4945, 3.1: the ID must equal the subject DN or a subjectAltName of the same kind."""
    if identity.id_type == IdType.ID_DER_ASN1_DN:
        return hmac.compare_digest(cert.subject.public_bytes(), identity.data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if identity.id_type == IdType.ID_FQDN:
        name = identity.data.decode("ascii", "replace").lower()
        return any(n.lower() == name for n in san.get_values_for_type(x509.DNSName))
    if identity.id_type == IdType.ID_RFC822_ADDR:
        mail = identity.data.decode("utf-8", "replace").lower()
        return any(n.lower() == mail for n in san.get_values_for_type(x509.RFC822Name))
    if identity.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        try:
            addr = ipaddress.ip_address(identity.data)
        except ValueError:
            return False
        return addr in san.get_values_for_type(x509.IPAddress)
    return False


def certreq_data(anchors: tuple[x509.Certificate, ...]) -> bytes:
    """RFC 7296, 3.7: SHA-1 hashes of the trust anchors' SubjectPublicKeyInfo."""
    return b"".join(
        hashlib.sha1(  # noqa: S324 - the hash RFC 7296 prescribes for CERTREQ
            a.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).digest()
        for a in anchors
    )
