"""MD4 message digest (RFC 1320), in pure Python.

MS-CHAPv2 (RFC 2759) hashes the password with MD4.  OpenSSL 3 moved MD4 to its legacy
provider, so ``hashlib.new("md4")`` is not available on this machine; this module fills the gap.
MD4 is broken as a general-purpose hash: use it only where a protocol demands it.
"""

from __future__ import annotations

import struct

__all__ = ["md4"]

_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    x = struct.unpack("<16I", block)
    a, b, c, d = state

    # Round 1 (RFC 1320 section 3.4): F(X,Y,Z) = XY v not(X) Z
    for i in range(0, 16, 4):
        a = _rotl(a + ((b & c) | (~b & d)) + x[i], 3)
        d = _rotl(d + ((a & b) | (~a & c)) + x[i + 1], 7)
        c = _rotl(c + ((d & a) | (~d & b)) + x[i + 2], 11)
        b = _rotl(b + ((c & d) | (~c & a)) + x[i + 3], 19)

    # Round 2: G(X,Y,Z) = XY v XZ v YZ, constant 0x5A827999
    for i in range(4):
        a = _rotl(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
        d = _rotl(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
        c = _rotl(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
        b = _rotl(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)

    # Round 3: H(X,Y,Z) = X xor Y xor Z, constant 0x6ED9EBA1
    for i in (0, 2, 1, 3):
        a = _rotl(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
        d = _rotl(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
        c = _rotl(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
        b = _rotl(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)

    return (
        (state[0] + a) & _MASK,
        (state[1] + b) & _MASK,
        (state[2] + c) & _MASK,
        (state[3] + d) & _MASK,
    )


def md4(data: bytes) -> bytes:
    """Return the 16-byte MD4 digest of ``data`` (RFC 1320)."""
    bit_length = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    # Step 1 and 2: pad with a single 1 bit, zeros to 448 mod 512, then the 64-bit length.
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_length)
    state = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
    for off in range(0, len(padded), 64):
        state = _compress(state, padded[off : off + 64])
    return struct.pack("<4I", *state)
