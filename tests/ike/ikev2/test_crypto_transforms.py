"""Transforms with known answers, Diffie-Hellman groups, and the MODP primes recomputed."""

from __future__ import annotations

from decimal import Decimal, getcontext

import pytest

from ike.constants import DhGroup, EncrId, IntegId, PrfId
from ike.crypto import _MODP_PRIMES, DH_GROUPS, INTEG_ALGS, PRF_ALGS, encr_alg, prf_plus
from ike.errors import InvalidSyntax


def test_aes_cbc_rfc3602_case1() -> None:
    # RFC 3602, 4, Case #1.
    alg = encr_alg(EncrId.ENCR_AES_CBC, 128)
    assert alg is not None and alg.key_len == 16 and alg.iv_len == 16
    key = bytes.fromhex("06a9214036b8a15b512e03d534120006")
    iv = bytes.fromhex("3dafba429d9eb430b422da802c9fac41")
    ct = alg.encrypt(key, iv, b"Single block msg")
    assert ct.hex() == "e353779c1079aeb82708942dbe77181a"
    assert alg.decrypt(key, iv, ct) == b"Single block msg"


def test_aes_gcm_salt_is_the_last_four_keymat_octets() -> None:
    # McGrew/Viega GCM spec Test Case 4 (nonce cafebabefacedbaddecaf888 = salt | IV).
    alg = encr_alg(EncrId.ENCR_AES_GCM_16, 128)
    assert alg is not None and alg.key_len == 20 and alg.iv_len == 8 and alg.icv_len == 16
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308") + bytes.fromhex("cafebabe")
    iv = bytes.fromhex("facedbaddecaf888")
    pt = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    out = alg.encrypt(key, iv, pt, aad)
    assert out[:-16].hex() == (
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
    )
    assert out[-16:].hex() == "5bc94fbc3221a5db94fae95ae7121a47"
    assert alg.decrypt(key, iv, out, aad) == pt
    with pytest.raises(InvalidSyntax):
        alg.decrypt(key, iv, out, aad + b"x")


def test_chacha20_poly1305_rfc7539_aead_vector() -> None:
    # RFC 7539, 2.8.2: nonce 07000000 | 4041424344454647 = salt | IV (RFC 7634, 2).
    alg = encr_alg(EncrId.ENCR_CHACHA20_POLY1305, None)
    assert alg is not None and alg.key_len == 36
    assert encr_alg(EncrId.ENCR_CHACHA20_POLY1305, 256) is None
    key = bytes(range(0x80, 0xA0)) + bytes.fromhex("07000000")
    iv = bytes.fromhex("4041424344454647")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    pt = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    out = alg.encrypt(key, iv, pt, aad)
    assert out[:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"
    assert out[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"


def test_hmac_integrity_and_prf_known_answers() -> None:
    # RFC 4231 test case 2 (SHA-256) and RFC 2202 test case 2 (SHA-1).
    sha256 = INTEG_ALGS[IntegId.AUTH_HMAC_SHA2_256_128]
    mac = sha256.compute(b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c7"
    assert sha256.verify(b"Jefe", b"what do ya want for nothing?", mac)
    assert not sha256.verify(b"Jefe", b"what do ya want for nothing!", mac)
    sha1 = INTEG_ALGS[IntegId.AUTH_HMAC_SHA1_96]
    assert sha1.compute(b"Jefe", b"what do ya want for nothing?").hex() == (
        "effcdf6ae5eb2fa2d27416d5"
    )
    prf = PRF_ALGS[PrfId.PRF_HMAC_SHA1]
    assert prf(b"Jefe", b"what do ya want for nothing?").hex() == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    )
    assert INTEG_ALGS[IntegId.AUTH_HMAC_SHA2_384_192].icv_len == 24
    assert INTEG_ALGS[IntegId.AUTH_HMAC_SHA2_512_256].icv_len == 32


def test_prf_plus_blocks_and_limit() -> None:
    prf = PRF_ALGS[PrfId.PRF_HMAC_SHA2_256]
    t1 = prf(b"k", b"seed\x01")
    t2 = prf(b"k", t1 + b"seed\x02")
    assert prf_plus(prf, b"k", b"seed", 40) == (t1 + t2)[:40]
    prf_plus(prf, b"k", b"s", 255 * 32)
    with pytest.raises(Exception, match="255"):
        prf_plus(prf, b"k", b"s", 255 * 32 + 1)


@pytest.mark.parametrize("group", sorted(DH_GROUPS))
def test_dh_groups_agree(group: int) -> None:
    g = DH_GROUPS[group]
    a, b = g.generate(), g.generate()
    assert len(a.public) == g.public_len
    assert a.exchange(b.public) == b.exchange(a.public)
    with pytest.raises(InvalidSyntax):
        a.exchange(b.public + b"\0")


@pytest.mark.parametrize("group", [DhGroup.ECP_256, DhGroup.MODP_2048, DhGroup.CURVE25519])
def test_dh_rejects_bad_public_values(group: int) -> None:
    g = DH_GROUPS[group]
    a = g.generate()
    bad = bytes(g.public_len)  # zero: not on the curve / out of range / low order
    with pytest.raises(InvalidSyntax):
        a.exchange(bad)


def test_modp_primes_recomputed_from_pi() -> None:
    # RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + k ).
    getcontext().prec = 1300

    def arctan_inv(x: int) -> Decimal:
        total, term, n, sign, x2 = Decimal(0), Decimal(1) / x, 1, 1, x * x
        eps = Decimal(10) ** -1290
        while term > eps:
            total += sign * term / n
            term /= x2
            n += 2
            sign = -sign
        return total

    pi = 4 * (4 * arctan_inv(5) - arctan_inv(239))
    for group, n, k in ((14, 2048, 124476), (15, 3072, 1690314), (16, 4096, 240904)):
        p = 2**n - 2 ** (n - 64) - 1 + 2**64 * (int(Decimal(2) ** (n - 130) * pi) + k)
        assert _MODP_PRIMES[group] == p
