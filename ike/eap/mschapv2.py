"""MS-CHAPv2 primitives (RFC 2759 section 8) and MPPE key derivation (RFC 3079 section 3).

These are the building blocks of EAP-MS-CHAPv2 (``ike.eap.methods.mschapv2``) and of the
MS-CHAPv2 inside EAP-TTLS, PEAP and EAP-FAST.  Function names follow the RFC pseudo-code in
snake case; arguments are bytes except the password, which is a ``str`` (the RFC's
"0-to-256-unicode-char Password", hashed as UTF-16LE).

Keys (RFC 3079 section 3.3, [MS-CHAP] 3.1.5.1):

* ``master_key = get_master_key(password_hash_hash, nt_response)`` (16 bytes)
* ``MasterSendKey`` / ``MasterReceiveKey`` = ``get_asymmetric_start_key(master_key, 16,
  is_send, is_server)``; the authenticator's send key is the peer's receive key.
* EAP-MS-CHAPv2 MSK = MasterReceiveKey || MasterSendKey (both as seen by the authenticator)
  || 32 zero bytes = 64 bytes ([MS-CHAP] 3.1.5.1; hostapd exports the first 32 bytes only).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ike.eap.md4 import md4

__all__ = [
    "MSK_LENGTH",
    "MasterKeys",
    "challenge_hash",
    "challenge_response",
    "check_authenticator_response",
    "derive_master_keys",
    "des_encrypt",
    "generate_authenticator_response",
    "generate_nt_response",
    "get_asymmetric_start_key",
    "get_master_key",
    "hash_nt_password_hash",
    "msk_from_master_key",
    "nt_password_hash",
    "strip_domain",
]

MSK_LENGTH = 64

# RFC 2759 section 8.7, GenerateAuthenticatorResponse() constants.
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 section 3.4, GetMasterKey() and GetAsymmetricStartKey() constants.
_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_KEY_MAGIC3 = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


def _sha1(*parts: bytes) -> bytes:
    h = hashlib.sha1()  # noqa: S324 - SHA-1 is what RFC 2759 / RFC 3079 specify
    for part in parts:
        h.update(part)
    return h.digest()


def _check_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def strip_domain(username: bytes) -> bytes:
    """User name as hashed by ChallengeHash: without a leading ``DOMAIN\\`` part.

    RFC 2759 section 8.2 hashes the user name "without any domain name"; Windows peers send
    ``DOMAIN\\user``, and hostapd and FreeRADIUS strip everything up to the last backslash.
    """
    return username.rpartition(b"\\")[2]


def nt_password_hash(password: str) -> bytes:
    """RFC 2759 8.3 NtPasswordHash: MD4 of the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """RFC 2759 8.4 HashNtPasswordHash: MD4 of the 16-byte password hash."""
    _check_len("password_hash", password_hash, 16)
    return md4(password_hash)


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """RFC 2759 8.2 ChallengeHash: first 8 bytes of SHA1(peer || authenticator || user)."""
    _check_len("peer_challenge", peer_challenge, 16)
    _check_len("authenticator_challenge", authenticator_challenge, 16)
    return _sha1(peer_challenge, authenticator_challenge, username)[:8]


def _des_key(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 bytes, setting odd parity in the low bit (RFC 2759 8.6)."""
    bits = int.from_bytes(key7, "big")
    out = bytearray()
    for i in range(8):
        b = ((bits >> (49 - 7 * i)) & 0x7F) << 1
        if bin(b).count("1") % 2 == 0:
            b |= 1
        out.append(b)
    return bytes(out)


def des_encrypt(clear: bytes, key7: bytes) -> bytes:
    """RFC 2759 8.6 DesEncrypt: one DES block of ``clear`` under a 7-byte key."""
    _check_len("clear", clear, 8)
    _check_len("key", key7, 7)
    # DES-EDE3 with K1 = K2 = K3 is single DES; OpenSSL 3 keeps plain DES in its legacy provider.
    encryptor = Cipher(TripleDES(_des_key(key7) * 3), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """RFC 2759 8.5 ChallengeResponse: the 24-byte response to an 8-byte challenge."""
    _check_len("challenge", challenge, 8)
    _check_len("password_hash", password_hash, 16)
    z = password_hash + b"\x00" * 5
    return (
        des_encrypt(challenge, z[0:7])
        + des_encrypt(challenge, z[7:14])
        + des_encrypt(challenge, z[14:21])
    )


def generate_nt_response(
    authenticator_challenge: bytes,
    peer_challenge: bytes,
    username: bytes,
    password_hash: bytes,
) -> bytes:
    """RFC 2759 8.1 GenerateNTResponse, from the NT password hash (not the password).

    Taking the hash lets a server keep NT hashes instead of clear-text passwords.
    """
    chal = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(chal, password_hash)


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: bytes,
) -> bytes:
    """RFC 2759 8.7 GenerateAuthenticatorResponse: the 42-byte ``S=<40 hex digits>``."""
    _check_len("nt_response", nt_response, 24)
    password_hash_hash = hash_nt_password_hash(password_hash)
    digest = _sha1(password_hash_hash, nt_response, _AUTH_MAGIC1)
    chal = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = _sha1(digest, chal, _AUTH_MAGIC2)
    return b"S=" + digest.hex().upper().encode("ascii")


def check_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: bytes,
    received: bytes,
) -> bool:
    """RFC 2759 8.8 CheckAuthenticatorResponse, compared in constant time.

    Hex digits are compared case-insensitively (the RFC prints upper case; some servers
    send lower case).
    """
    expected = generate_authenticator_response(
        password_hash, nt_response, peer_challenge, authenticator_challenge, username
    )
    if len(received) != len(expected):
        return False
    return hmac.compare_digest(expected, received[:2] + received[2:].upper())


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """RFC 3079 3.4 GetMasterKey: 16 bytes of SHA1(hash-hash || NT-Response || Magic1)."""
    _check_len("password_hash_hash", password_hash_hash, 16)
    _check_len("nt_response", nt_response, 24)
    return _sha1(password_hash_hash, nt_response, _KEY_MAGIC1)[:16]


def get_asymmetric_start_key(
    master_key: bytes, key_length: int, is_send: bool, is_server: bool
) -> bytes:
    """RFC 3079 3.4 GetAsymmetricStartKey: the send or receive start key of one side."""
    _check_len("master_key", master_key, 16)
    if key_length not in (8, 16):
        raise ValueError("key_length must be 8 or 16")
    if is_send:
        magic = _KEY_MAGIC3 if is_server else _KEY_MAGIC2
    else:
        magic = _KEY_MAGIC2 if is_server else _KEY_MAGIC3
    return _sha1(master_key, _SHS_PAD1, magic, _SHS_PAD2)[:key_length]


class MasterKeys:
    """The 128-bit MasterSendKey and MasterReceiveKey as seen by the authenticator.

    ``server_send`` is the peer's receive key and ``server_receive`` the peer's send key
    (RFC 3079 3.3).  Secrets: the repr hides them.
    """

    __slots__ = ("server_receive", "server_send")

    def __init__(self, server_send: bytes, server_receive: bytes) -> None:
        _check_len("server_send", server_send, 16)
        _check_len("server_receive", server_receive, 16)
        self.server_send = server_send
        self.server_receive = server_receive

    def __repr__(self) -> str:
        return "MasterKeys(<secret>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKeys):
            return NotImplemented
        return hmac.compare_digest(
            self.server_send + self.server_receive, other.server_send + other.server_receive
        )

    def __hash__(self) -> int:
        return hash(MasterKeys)

    @property
    def msk(self) -> bytes:
        """EAP-MS-CHAPv2 MSK: MasterReceiveKey || MasterSendKey || 32 zero bytes."""
        return self.server_receive + self.server_send + b"\x00" * 32

    @property
    def peap_isk(self) -> bytes:
        """PEAP inner session key (32 bytes): the server's Recv key then its Send key."""
        return self.server_receive + self.server_send

    @property
    def fast_isk(self) -> bytes:
        """EAP-FAST inner session key (32 bytes): the server's Send key then its Recv key."""
        return self.server_send + self.server_receive


def derive_master_keys(password_hash: bytes, nt_response: bytes) -> MasterKeys:
    """MasterSendKey / MasterReceiveKey (authenticator view) from the NT hash and response."""
    master_key = get_master_key(hash_nt_password_hash(password_hash), nt_response)
    return MasterKeys(
        server_send=get_asymmetric_start_key(master_key, 16, is_send=True, is_server=True),
        server_receive=get_asymmetric_start_key(master_key, 16, is_send=False, is_server=True),
    )


def msk_from_master_key(master_key: bytes) -> bytes:
    """EAP-MS-CHAPv2 MSK (64 bytes) from the 16-byte RFC 3079 master key."""
    recv = get_asymmetric_start_key(master_key, 16, is_send=False, is_server=True)
    send = get_asymmetric_start_key(master_key, 16, is_send=True, is_server=True)
    return recv + send + b"\x00" * 32
