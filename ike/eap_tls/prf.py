"""The TLS 1.2 PRF (RFC 5246 section 5), for key derivations OpenSSL does not export.

PEAP and EAP-FAST derive keys from the master secret with labels (``key expansion``) that
``SSL_export_keying_material`` refuses or that need a different seed order, so the PRF is
rebuilt here on ``cryptography``'s HMAC.  TLS 1.0/1.1's MD5+SHA-1 PRF is included for the
RFC 4851 (EAP-FAST) known answers, which use it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac

__all__ = ["p_hash", "tls10_prf", "tls12_prf"]


def _hmac(algorithm: hashes.HashAlgorithm, key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, algorithm)
    mac.update(data)
    return mac.finalize()


def p_hash(algorithm: hashes.HashAlgorithm, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed) of RFC 5246 section 5, truncated to ``length`` bytes."""
    if length < 0:
        raise ValueError("length must not be negative")
    out = bytearray()
    a = seed
    while len(out) < length:
        a = _hmac(algorithm, secret, a)
        out += _hmac(algorithm, secret, a + seed)
    return bytes(out[:length])


def tls12_prf(
    secret: bytes,
    label: bytes,
    seed: bytes,
    length: int,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label || seed); SHA-256 unless the cipher
    suite says otherwise (SHA-384 suites pass ``hashes.SHA384()``)."""
    return p_hash(algorithm or hashes.SHA256(), secret, label + seed, length)


def tls10_prf(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.0/1.1 PRF (RFC 2246 section 5): P_MD5(S1, ..) XOR P_SHA1(S2, ..)."""
    half = (len(secret) + 1) // 2
    s1, s2 = secret[:half], secret[len(secret) - half :]
    md5 = p_hash(hashes.MD5(), s1, label + seed, length)  # noqa: S303 - the protocol says MD5
    sha = p_hash(hashes.SHA1(), s2, label + seed, length)  # noqa: S303
    return bytes(a ^ b for a, b in zip(md5, sha, strict=True))
