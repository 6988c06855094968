"""EAP-FAST key derivations (RFC 4851 section 5, RFC 5422 section 3.2.2).

* T-PRF (5.5): ``T_i = HMAC-SHA1(K, T_(i-1) || S || 0x00 || seed || L (2 bytes) || i)``
  with T_0 empty; the label is NUL-terminated and L is the output length.
* master_secret of a PAC resumption (5.1) = T-PRF(PAC-Key, "PAC to master secret label
  hash", server_random || client_random, 48).
* session_key_seed (5.1) = the 40 bytes of PRF(master_secret, "key expansion",
  server_random || client_random) that follow the TLS key_block; anonymous provisioning
  (RFC 5422 3.2.3) adds server_challenge (16) and client_challenge (16) after it.
* IMCK[j] = T-PRF(S-IMCK[j-1], "Inner Methods Compound Keys", ISK[j], 60), S-IMCK[j] =
  IMCK[j][0:40], CMK[j] = IMCK[j][40:60]; S-IMCK[0] = session_key_seed (5.2).
* MSK = T-PRF(S-IMCK[n], "Session Key Generating Function", "", 64); EMSK with "Extended
  Session Key Generating Function" (5.4).
* Compound MAC = HMAC-SHA1(CMK, Crypto-Binding TLV with the MAC zeroed) (5.3).

The TLS PRF is the one of the negotiated version: TLS 1.2 uses P_SHA256 for the CBC-SHA
suites EAP-FAST runs on (:func:`ike.eap_tls.prf.tls12_prf`), TLS 1.0/1.1 the MD5/SHA-1 PRF
(the RFC's Appendix B examples).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ike.eap_tls.prf import tls12_prf

__all__ = [
    "CIPHER_KEY_LAYOUT",
    "EMSK_LABEL",
    "IMCK_LABEL",
    "MASTER_SECRET_LABEL",
    "MSK_LABEL",
    "CompoundKeys",
    "KeyChain",
    "ProvisioningKeys",
    "TlsPrf",
    "compound_mac",
    "key_block_length",
    "pac_master_secret",
    "session_key_material",
    "session_keys",
    "t_prf",
]

MASTER_SECRET_LABEL = b"PAC to master secret label hash"
IMCK_LABEL = b"Inner Methods Compound Keys"
MSK_LABEL = b"Session Key Generating Function"
EMSK_LABEL = b"Extended Session Key Generating Function"

TlsPrf = Callable[[bytes, bytes, bytes, int], bytes]
"""PRF(secret, label, seed, length) of the negotiated TLS version."""

CIPHER_KEY_LAYOUT: dict[str, tuple[int, int, int]] = {
    # OpenSSL cipher name -> (MAC key, encryption key, IV) lengths counted in the key_block.
    # The IV length is the cipher's block size even in TLS 1.1+ (where CBC IVs are
    # explicit): OpenSSL-based peers and servers skip 2 * (mac + key + block) bytes.
    "ADH-AES128-SHA": (20, 16, 16),
    "AES128-SHA": (20, 16, 16),
    "AES256-SHA": (20, 32, 16),
    "DHE-RSA-AES128-SHA": (20, 16, 16),
    "DHE-RSA-AES256-SHA": (20, 32, 16),
    "ECDHE-RSA-AES128-SHA": (20, 16, 16),
    "ECDHE-RSA-AES256-SHA": (20, 32, 16),
    "ECDHE-ECDSA-AES128-SHA": (20, 16, 16),
    "ECDHE-ECDSA-AES256-SHA": (20, 32, 16),
    "RC4-SHA": (20, 16, 0),
}


def t_prf(key: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """RFC 4851 5.5 T-PRF (HMAC-SHA1 based), ``length`` < 65536 bytes."""
    if not 0 <= length <= 0xFFFF:
        raise ValueError("T-PRF output length out of range")
    out = bytearray()
    previous = b""
    counter = 1
    tail = label + b"\x00" + seed + struct.pack("!H", length)
    while len(out) < length:
        if counter > 255:
            raise ValueError("T-PRF output too long")
        previous = hmac.new(key, previous + tail + bytes([counter]), hashlib.sha1).digest()
        out += previous
        counter += 1
    return bytes(out[:length])


def pac_master_secret(pac_key: bytes, server_random: bytes, client_random: bytes) -> bytes:
    """The 48-byte master_secret of a PAC-based abbreviated handshake (RFC 4851 5.1)."""
    if len(pac_key) != 32:
        raise ValueError("PAC-Key is 32 bytes")
    return t_prf(pac_key, MASTER_SECRET_LABEL, server_random + client_random, 48)


def key_block_length(cipher_name: str) -> int:
    """Bytes of TLS key_block that precede session_key_seed for an OpenSSL cipher name."""
    try:
        mac, key, iv = CIPHER_KEY_LAYOUT[cipher_name]
    except KeyError:
        raise ValueError(f"EAP-FAST: no key layout known for cipher {cipher_name!r}") from None
    return 2 * (mac + key + iv)


def session_key_material(
    master_secret: bytes,
    server_random: bytes,
    client_random: bytes,
    skip: int,
    length: int = 40,
    prf: TlsPrf = tls12_prf,
) -> bytes:
    """``length`` bytes that follow the first ``skip`` bytes of the TLS key expansion."""
    block = prf(master_secret, b"key expansion", server_random + client_random, skip + length)
    return block[skip:]


@dataclass(frozen=True, slots=True)
class ProvisioningKeys:
    """Anonymous provisioning (RFC 5422 3.2.3): session_key_seed and the MS-CHAPv2
    challenges, all from the TLS key expansion."""

    session_key_seed: bytes
    server_challenge: bytes
    client_challenge: bytes

    def __repr__(self) -> str:
        return "ProvisioningKeys(<secret>)"

    @classmethod
    def from_material(cls, material: bytes) -> ProvisioningKeys:
        if len(material) != 72:
            raise ValueError("provisioning key material is 72 bytes")
        return cls(material[:40], material[40:56], material[56:72])


@dataclass(frozen=True, slots=True)
class CompoundKeys:
    """IMCK[j] split into S-IMCK[j] (40) and CMK[j] (20)."""

    s_imck: bytes
    cmk: bytes

    def __repr__(self) -> str:
        return "CompoundKeys(<secret>)"


class KeyChain:
    """The S-IMCK chain of one EAP-FAST conversation (RFC 4851 5.2)."""

    def __init__(self, session_key_seed: bytes) -> None:
        if len(session_key_seed) != 40:
            raise ValueError("session_key_seed is 40 bytes")
        self.s_imck = session_key_seed
        self.index = 0
        self.cmk: bytes | None = None

    def __repr__(self) -> str:
        return f"KeyChain(index={self.index}, <secret>)"

    def advance(self, isk: bytes | None) -> CompoundKeys:
        """Fold in the next inner method's ISK (None or short = zero-padded to 32)."""
        isk = (isk or b"")[:32].ljust(32, b"\x00")
        imck = t_prf(self.s_imck, IMCK_LABEL, isk, 60)
        self.s_imck = imck[:40]
        self.cmk = imck[40:]
        self.index += 1
        return CompoundKeys(self.s_imck, self.cmk)

    def session_keys(self) -> tuple[bytes, bytes]:
        return session_keys(self.s_imck)


def session_keys(s_imck: bytes) -> tuple[bytes, bytes]:
    """(MSK, EMSK) from the last S-IMCK (RFC 4851 5.4)."""
    return t_prf(s_imck, MSK_LABEL, b"", 64), t_prf(s_imck, EMSK_LABEL, b"", 64)


def compound_mac(cmk: bytes, tlv_with_zero_mac: bytes) -> bytes:
    """RFC 4851 5.3: HMAC-SHA1(CMK, Crypto-Binding TLV with the MAC field zeroed)."""
    return hmac.new(cmk, tlv_with_zero_mac, hashlib.sha1).digest()
