"""PEAPv0 cryptobinding key chain ([MS-PEAP] 3.1.5.5 - 3.1.5.7; facts as hostapd implements
them, see /work/shared/notes/eap-facts.md).

* TK = first 60 bytes of the TLS key material ("client EAP encryption"; TLS 1.3: the RFC 9427
  exporter with context 0x19, 128 bytes asked and sliced).
* PRF+(K, S, LEN): T1 = HMAC-SHA1(K, S || 0x01 || 0x00 0x00),
  Tn = HMAC-SHA1(K, T(n-1) || S || n || 0x00 0x00).
* IPMK || CMK = PRF+(TK[0:40], "Inner Methods Compound Keys" || ISK, 60); ISK is the inner
  method's 32-byte session key (zeros without one).
* Compound MAC = HMAC-SHA1(CMK, Crypto-Binding TLV with zeroed MAC || 0x19).
* CSK = PRF+(IPMK, "Session Key Generating Function" || 0x00, 128); MSK = CSK[0:64],
  EMSK = CSK[64:128].
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha1

__all__ = [
    "CompoundKeys",
    "compound_keys",
    "compound_mac",
    "peap_prf_plus",
    "session_keys",
]

IPMK_LABEL = b"Inner Methods Compound Keys"
CSK_LABEL = b"Session Key Generating Function\x00"


def peap_prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    out = bytearray()
    t = b""
    n = 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([n, 0, 0]), sha1).digest()
        out += t
        n += 1
    return bytes(out[:length])


@dataclass(frozen=True, slots=True)
class CompoundKeys:
    ipmk: bytes
    cmk: bytes

    def __repr__(self) -> str:
        return "CompoundKeys(<secret>)"


def compound_keys(tk: bytes, isk: bytes | None) -> CompoundKeys:
    """IPMK (40) and CMK (20) from the tunnel key and the inner session key."""
    if len(tk) < 40:
        raise ValueError("TK shorter than 40 bytes")
    isk32 = (isk or b"")[:32].ljust(32, b"\x00")
    block = peap_prf_plus(tk[:40], IPMK_LABEL + isk32, 60)
    return CompoundKeys(block[:40], block[40:60])


def compound_mac(cmk: bytes, mac_input: bytes) -> bytes:
    return hmac.new(cmk, mac_input, sha1).digest()


def session_keys(ipmk: bytes) -> tuple[bytes, bytes]:
    """(MSK, EMSK) from the IPMK."""
    csk = peap_prf_plus(ipmk, CSK_LABEL, 128)
    return csk[:64], csk[64:]
