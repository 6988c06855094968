"""IKEv2 cryptography: transforms, prf+, the key derivations and Diffie-Hellman groups.

RFC 7296 section 2.13 (prf+), 2.14 (SKEYSEED and the IKE SA keys), 2.17 (CHILD_SA keying
material), 2.18 (rekeying SKEYSEED); RFC 5282 (AES-GCM in the SK payload: 8-octet IV, 4-octet
salt at the end of each SK_e key); RFC 7634 (ChaCha20-Poly1305, same layout); RFC 4868
(HMAC-SHA2 PRFs and truncated integrity); RFC 3526 (MODP groups 14-16), RFC 5903 (ECP groups,
public value x || y, shared secret x), RFC 8031 (Curve25519 / Curve448).
"""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ike.constants import DhGroup, EncrId, IntegId, PrfId
from ike.errors import IntegrityCheckFailed, InvalidSyntax, LocalProtocolError

with warnings.catch_warnings():
    # FFDH is deprecated in recent `cryptography`; RFC 7296 groups 14-16 still need it.
    warnings.simplefilter("ignore")
    from cryptography.hazmat.primitives.asymmetric import dh

__all__ = [
    "DH_GROUPS",
    "ENCR_ALGS",
    "INTEG_ALGS",
    "PRF_ALGS",
    "ChildKeys",
    "DhGroupAlg",
    "DhPrivate",
    "EncrAlg",
    "IkeKeys",
    "IntegAlg",
    "PrfAlg",
    "derive_child_keys",
    "derive_ike_keys",
    "encr_alg",
    "prf_plus",
    "rekey_skeyseed",
    "skeyseed",
]


# --------------------------------------------------------------------------------------------
# PRF and prf+


@dataclass(frozen=True, slots=True)
class PrfAlg:
    """A PRF transform (RFC 7296, 3.3.2 type 2); all supported ones are HMACs."""

    prf_id: PrfId
    hash_name: str
    output_len: int

    def __call__(self, key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, self.hash_name)

    @property
    def name(self) -> str:
        return self.prf_id.name


def prf_plus(prf: Callable[[bytes, bytes], bytes], key: bytes, seed: bytes, length: int) -> bytes:
    """RFC 7296, 2.13: T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n); at most 255 blocks."""
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        if counter > 255:
            raise LocalProtocolError("prf+ asked for more than 255 blocks")
        block = prf(key, block + seed + bytes([counter]))
        out += block
        counter += 1
    return bytes(out[:length])


PRF_ALGS: dict[int, PrfAlg] = {
    PrfId.PRF_HMAC_SHA1: PrfAlg(PrfId.PRF_HMAC_SHA1, "sha1", 20),
    PrfId.PRF_HMAC_SHA2_256: PrfAlg(PrfId.PRF_HMAC_SHA2_256, "sha256", 32),
    PrfId.PRF_HMAC_SHA2_384: PrfAlg(PrfId.PRF_HMAC_SHA2_384, "sha384", 48),
    PrfId.PRF_HMAC_SHA2_512: PrfAlg(PrfId.PRF_HMAC_SHA2_512, "sha512", 64),
}


# --------------------------------------------------------------------------------------------
# Integrity


@dataclass(frozen=True, slots=True)
class IntegAlg:
    """An integrity transform (RFC 7296, 3.3.2 type 3): truncated HMAC (RFC 2404, RFC 4868)."""

    integ_id: IntegId
    hash_name: str
    key_len: int
    icv_len: int

    def compute(self, key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, self.hash_name)[: self.icv_len]

    def verify(self, key: bytes, data: bytes, icv: bytes) -> bool:
        return hmac.compare_digest(self.compute(key, data), icv)

    @property
    def name(self) -> str:
        return self.integ_id.name


INTEG_ALGS: dict[int, IntegAlg] = {
    IntegId.AUTH_HMAC_SHA1_96: IntegAlg(IntegId.AUTH_HMAC_SHA1_96, "sha1", 20, 12),
    IntegId.AUTH_HMAC_SHA2_256_128: IntegAlg(IntegId.AUTH_HMAC_SHA2_256_128, "sha256", 32, 16),
    IntegId.AUTH_HMAC_SHA2_384_192: IntegAlg(IntegId.AUTH_HMAC_SHA2_384_192, "sha384", 48, 24),
    IntegId.AUTH_HMAC_SHA2_512_256: IntegAlg(IntegId.AUTH_HMAC_SHA2_512_256, "sha512", 64, 32),
}


# --------------------------------------------------------------------------------------------
# Encryption


@dataclass(frozen=True, slots=True)
class EncrAlg:
    """An encryption transform with a fixed key size.

    ``key_len`` is the keying material taken from prf+ (key plus salt for AEADs).
    """

    encr_id: EncrId
    key_bits: int

    @property
    def aead(self) -> bool:
        return self.encr_id in (EncrId.ENCR_AES_GCM_16, EncrId.ENCR_CHACHA20_POLY1305)

    @property
    def salt_len(self) -> int:
        return 4 if self.aead else 0

    @property
    def key_len(self) -> int:
        return self.key_bits // 8 + self.salt_len

    @property
    def iv_len(self) -> int:
        return 8 if self.aead else 16

    @property
    def block_size(self) -> int:
        return 1 if self.aead else 16

    @property
    def icv_len(self) -> int:
        return 16 if self.aead else 0

    @property
    def name(self) -> str:
        if self.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
            return "ENCR_CHACHA20_POLY1305"
        return f"{self.encr_id.name}_{self.key_bits}"

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt; for AEADs the returned bytes end with the 16-octet ICV."""
        if len(key) != self.key_len or len(iv) != self.iv_len:
            raise LocalProtocolError("wrong key or IV length")
        if self.encr_id == EncrId.ENCR_AES_CBC:
            if len(plaintext) % 16:
                raise LocalProtocolError("AES-CBC plaintext must be padded to 16 octets")
            enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            return enc.update(plaintext) + enc.finalize()
        nonce = key[-4:] + iv
        if self.encr_id == EncrId.ENCR_AES_GCM_16:
            return AESGCM(key[:-4]).encrypt(nonce, plaintext, aad)
        return ChaCha20Poly1305(key[:-4]).encrypt(nonce, plaintext, aad)

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        """Decrypt; raises :class:`~ike.errors.InvalidSyntax` when an AEAD tag fails."""
        if len(key) != self.key_len or len(iv) != self.iv_len:
            raise LocalProtocolError("wrong key or IV length")
        if self.encr_id == EncrId.ENCR_AES_CBC:
            if len(ciphertext) % 16 or not ciphertext:
                raise InvalidSyntax("AES-CBC ciphertext is not a whole number of blocks")
            dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            return dec.update(ciphertext) + dec.finalize()
        nonce = key[-4:] + iv
        try:
            if self.encr_id == EncrId.ENCR_AES_GCM_16:
                return AESGCM(key[:-4]).decrypt(nonce, ciphertext, aad)
            return ChaCha20Poly1305(key[:-4]).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise IntegrityCheckFailed("AEAD integrity check failed") from None


ENCR_ALGS: tuple[EncrAlg, ...] = (
    EncrAlg(EncrId.ENCR_AES_CBC, 128),
    EncrAlg(EncrId.ENCR_AES_CBC, 192),
    EncrAlg(EncrId.ENCR_AES_CBC, 256),
    EncrAlg(EncrId.ENCR_AES_GCM_16, 128),
    EncrAlg(EncrId.ENCR_AES_GCM_16, 192),
    EncrAlg(EncrId.ENCR_AES_GCM_16, 256),
    EncrAlg(EncrId.ENCR_CHACHA20_POLY1305, 256),
)


def encr_alg(encr_id: int, key_length: int | None) -> EncrAlg | None:
    """Look up a supported encryption transform by ID and Key Length attribute (bits).

    RFC 7634, 2: ChaCha20-Poly1305 has a fixed key and must carry no Key Length attribute;
    AES transforms must carry one (RFC 7296, 3.3.5).
    """
    for alg in ENCR_ALGS:
        if alg.encr_id != encr_id:
            continue
        if alg.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
            return alg if key_length is None else None
        if key_length == alg.key_bits:
            return alg
    return None


# --------------------------------------------------------------------------------------------
# Diffie-Hellman


_MODP_PRIMES: dict[int, int] = {
    14: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
        16,
    ),
    15: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
        "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
        "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
        16,
    ),
    16: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
        "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
        "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
        "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
        "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
        "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
        "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
        16,
    ),
}
"""RFC 3526 sections 3, 4 and 5; generator 2.  (tests/ike/ikev2 recomputes them from pi.)"""

_ECP_CURVES: dict[int, tuple[ec.EllipticCurve, int]] = {
    DhGroup.ECP_256: (ec.SECP256R1(), 32),
    DhGroup.ECP_384: (ec.SECP384R1(), 48),
    DhGroup.ECP_521: (ec.SECP521R1(), 66),
}


class DhPrivate:
    """One ephemeral key pair of a group; ``public`` is the KE payload data."""

    __slots__ = ("_group", "_key", "public")

    def __init__(self, group: DhGroupAlg) -> None:
        self._group = group
        self._key: object
        gid = group.group
        if gid in _MODP_PRIMES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                key = _modp_params(gid).generate_private_key()
            self._key = key
            y = key.public_key().public_numbers().y
            self.public = y.to_bytes(group.public_len, "big")
        elif gid in _ECP_CURVES:
            curve, size = _ECP_CURVES[gid]
            eckey = ec.generate_private_key(curve)
            self._key = eckey
            nums = eckey.public_key().public_numbers()
            self.public = nums.x.to_bytes(size, "big") + nums.y.to_bytes(size, "big")
        elif gid == DhGroup.CURVE25519:
            xkey = x25519.X25519PrivateKey.generate()
            self._key = xkey
            self.public = xkey.public_key().public_bytes_raw()
        elif gid == DhGroup.CURVE448:
            x4key = x448.X448PrivateKey.generate()
            self._key = x4key
            self.public = x4key.public_key().public_bytes_raw()
        else:  # pragma: no cover - DH_GROUPS only holds the groups above
            raise LocalProtocolError(f"unsupported DH group {gid}")

    @property
    def group(self) -> int:
        return self._group.group

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret g^ir; a malformed peer value raises InvalidSyntax."""
        if len(peer_public) != self._group.public_len:
            raise InvalidSyntax(
                f"KE data of group {self.group} must be {self._group.public_len} octets"
            )
        key = self._key
        try:
            if isinstance(key, ec.EllipticCurvePrivateKey):
                pt = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, b"\x04" + peer_public)
                return key.exchange(ec.ECDH(), pt)
            if isinstance(key, x25519.X25519PrivateKey):
                return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
            if isinstance(key, x448.X448PrivateKey):
                return key.exchange(x448.X448PublicKey.from_public_bytes(peer_public))
            if self.group in _MODP_PRIMES:
                assert isinstance(key, _DH_PRIVATE)
                p = _MODP_PRIMES[self.group]
                y = int.from_bytes(peer_public, "big")
                if not 1 < y < p - 1:
                    raise InvalidSyntax("MODP public value out of range")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pub = dh.DHPublicNumbers(y, _modp_params(self.group).parameter_numbers())
                    secret = key.exchange(pub.public_key())
                return secret.rjust(self._group.public_len, b"\0")
        except ValueError as exc:
            # Points not on the curve, all-zero X25519/X448 results (RFC 8031, 2.3).
            raise InvalidSyntax(f"bad KE data for group {self.group}: {exc}") from None
        raise LocalProtocolError("unknown key type")  # pragma: no cover


_MODP_PARAMS: dict[int, dh.DHParameters] = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _DH_PRIVATE = dh.DHPrivateKey


def _modp_params(group: int) -> dh.DHParameters:
    params = _MODP_PARAMS.get(group)
    if params is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = dh.DHParameterNumbers(_MODP_PRIMES[group], 2).parameters()
        _MODP_PARAMS[group] = params
    return params


@dataclass(frozen=True, slots=True)
class DhGroupAlg:
    """A Diffie-Hellman transform (RFC 7296, 3.3.2 type 4)."""

    group: DhGroup
    public_len: int

    def generate(self) -> DhPrivate:
        return DhPrivate(self)

    @property
    def name(self) -> str:
        return self.group.name


DH_GROUPS: dict[int, DhGroupAlg] = {
    DhGroup.MODP_2048: DhGroupAlg(DhGroup.MODP_2048, 256),
    DhGroup.MODP_3072: DhGroupAlg(DhGroup.MODP_3072, 384),
    DhGroup.MODP_4096: DhGroupAlg(DhGroup.MODP_4096, 512),
    DhGroup.ECP_256: DhGroupAlg(DhGroup.ECP_256, 64),
    DhGroup.ECP_384: DhGroupAlg(DhGroup.ECP_384, 96),
    DhGroup.ECP_521: DhGroupAlg(DhGroup.ECP_521, 132),
    DhGroup.CURVE25519: DhGroupAlg(DhGroup.CURVE25519, 32),
    DhGroup.CURVE448: DhGroupAlg(DhGroup.CURVE448, 56),
}


# --------------------------------------------------------------------------------------------
# Key derivation


def skeyseed(prf: PrfAlg, ni: bytes, nr: bytes, g_ir: bytes) -> bytes:
    """RFC 7296, 2.14: SKEYSEED = prf(Ni | Nr, g^ir)."""
    return prf(ni + nr, g_ir)


def rekey_skeyseed(prf: PrfAlg, sk_d: bytes, g_ir_new: bytes, ni: bytes, nr: bytes) -> bytes:
    """RFC 7296, 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)."""
    return prf(sk_d, g_ir_new + ni + nr)


@dataclass(frozen=True, slots=True, repr=False)
class IkeKeys:
    """RFC 7296, 2.14: the seven IKE SA keys (repr hides them: secrets are never logged)."""

    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes

    def __repr__(self) -> str:
        return "IkeKeys(<secret>)"


def derive_ike_keys(
    prf: PrfAlg,
    seed_key: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    encr_key_len: int,
    integ_key_len: int,
) -> IkeKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni|Nr|SPIi|SPIr)."""
    p = prf.output_len
    total = 3 * p + 2 * integ_key_len + 2 * encr_key_len
    km = prf_plus(prf, seed_key, ni + nr + spi_i + spi_r, total)
    parts: list[bytes] = []
    pos = 0
    for n in (p, integ_key_len, integ_key_len, encr_key_len, encr_key_len, p, p):
        parts.append(km[pos : pos + n])
        pos += n
    return IkeKeys(*parts)


@dataclass(frozen=True, slots=True, repr=False)
class ChildKeys:
    """RFC 7296, 2.17: keys of both directions of a CHILD_SA (initiator-to-responder first)."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return "ChildKeys(<secret>)"


def child_keymat(
    prf: PrfAlg, sk_d: bytes, ni: bytes, nr: bytes, length: int, g_ir: bytes | None = None
) -> bytes:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)."""
    return prf_plus(prf, sk_d, (g_ir or b"") + ni + nr, length)


def derive_child_keys(
    prf: PrfAlg,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    encr_key_len: int,
    integ_key_len: int,
    g_ir: bytes | None = None,
) -> ChildKeys:
    km = child_keymat(prf, sk_d, ni, nr, 2 * (encr_key_len + integ_key_len), g_ir)
    e, a = encr_key_len, integ_key_len
    return ChildKeys(km[:e], km[e : e + a], km[e + a : 2 * e + a], km[2 * e + a :])

