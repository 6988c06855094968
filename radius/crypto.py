"""The MD5-based hiding of RADIUS secrets on the wire.

* User-Password (RFC 2865 section 5.2): the password, NUL-padded to a multiple of 16, XORed
  with the chain b1 = MD5(S + RA), bi = MD5(S + c(i-1)).
* MS-MPPE-Send-Key / MS-MPPE-Recv-Key (RFC 2548 sections 2.4.2 and 2.4.3): a 2-octet salt
  with the high bit set, then (key length octet + key + zero padding) XORed with the chain
  b1 = MD5(S + R + A), bi = MD5(S + c(i-1)), where R is the Request Authenticator of the
  Access-Request being answered and A the salt.

MD5 here is the protocol's own construction, not a choice of ours.
"""

from __future__ import annotations

import hashlib

from radius.errors import LocalProtocolError, MalformedAttribute

__all__ = ["decrypt_mppe_key", "encrypt_mppe_key", "hide_password", "unhide_password"]

_BLOCK = 16
_MAX_PASSWORD = 128
_USER_PASSWORD = 2


def _md5(*parts: bytes) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part)
    return digest.digest()


def _xor_chain(data: bytes, secret: bytes, first_seed: bytes, *, decrypt: bool) -> bytes:
    out = bytearray()
    seed = first_seed
    for i in range(0, len(data), _BLOCK):
        block = data[i : i + _BLOCK]
        pad = _md5(secret, seed)
        if len(block) != len(pad):
            raise ValueError("data is not a multiple of 16 octets")
        result = (int.from_bytes(block) ^ int.from_bytes(pad)).to_bytes(_BLOCK)
        out += result
        seed = block if decrypt else result
    return bytes(out)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 section 5.2: the User-Password value for this Request Authenticator."""
    if len(password) > _MAX_PASSWORD:
        raise LocalProtocolError("User-Password longer than 128 octets")
    padded_length = max(_BLOCK, -(-len(password) // _BLOCK) * _BLOCK)
    padded = password.ljust(padded_length, b"\x00")
    return _xor_chain(padded, secret, authenticator, decrypt=False)


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Reverse :func:`hide_password`; the NUL padding is removed."""
    if not _BLOCK <= len(hidden) <= _MAX_PASSWORD or len(hidden) % _BLOCK:
        raise MalformedAttribute(
            f"User-Password of {len(hidden)} octets is not 16..128 in steps of 16",
            attribute_type=_USER_PASSWORD,
        )
    return _xor_chain(hidden, secret, authenticator, decrypt=True).rstrip(b"\x00")


def encrypt_mppe_key(key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes) -> bytes:
    """RFC 2548 section 2.4.2: Salt || encrypted String for an MS-MPPE-Send/Recv-Key."""
    if len(salt) != 2 or not salt[0] & 0x80:
        raise LocalProtocolError("MPPE salt must be 2 octets with the high bit set")
    if len(key) > 255:
        raise LocalProtocolError("MPPE key longer than 255 octets")
    plain = bytes([len(key)]) + key
    plain = plain.ljust(-(-len(plain) // _BLOCK) * _BLOCK, b"\x00")
    return salt + _xor_chain(plain, secret, request_authenticator + salt, decrypt=False)


def decrypt_mppe_key(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Reverse :func:`encrypt_mppe_key` (the vendor sub-attribute value, salt included)."""
    salt, cipher = value[:2], value[2:]
    if len(salt) != 2 or not salt[0] & 0x80:
        raise MalformedAttribute("MPPE key salt missing or high bit clear", attribute_type=26)
    if not cipher or len(cipher) % _BLOCK:
        raise MalformedAttribute(
            f"MPPE key ciphertext of {len(cipher)} octets is not a multiple of 16",
            attribute_type=26,
        )
    plain = _xor_chain(cipher, secret, request_authenticator + salt, decrypt=True)
    length = plain[0]
    if length > len(plain) - 1:
        raise MalformedAttribute("MPPE key length exceeds the ciphertext", attribute_type=26)
    return plain[1 : 1 + length]
