"""Known answers for MD4 (RFC 1320), MS-CHAPv2 (RFC 2759) and MPPE keys (RFC 3079)."""

from __future__ import annotations

import pytest

from ike.eap import mschapv2 as m
from ike.eap.md4 import md4

# RFC 1320, Appendix A.5 "Test suite".
RFC1320_SUITE = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "043f8582f241db351ce627e153e7f0e4",
    ),
    (
        b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "e33b4ddc9c38f2199c3e7b164fcc0536",
    ),
]


@pytest.mark.parametrize(("message", "digest"), RFC1320_SUITE)
def test_md4_rfc1320_suite(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


@pytest.mark.parametrize("length", [55, 56, 57, 63, 64, 65, 119, 120, 128])
def test_md4_padding_boundaries_differ(length: int) -> None:
    # Lengths around the 56-byte padding boundary must hash to distinct 16-byte digests.
    a = md4(b"x" * length)
    b = md4(b"x" * (length + 1))
    assert len(a) == 16 and a != b


# RFC 2759 section 9.2 "Sample Data" (also the initial values of RFC 3079 section 3.5.3).
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 section 3.5.3 "Sample Key Derivations" (128-bit key from MS-CHAP-2).
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


def test_rfc2759_password_hashes() -> None:
    assert m.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert m.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH


def test_rfc2759_challenge_hash_and_nt_response() -> None:
    assert m.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert m.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert m.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD_HASH) == (
        NT_RESPONSE
    )


def test_rfc2759_authenticator_response() -> None:
    got = m.generate_authenticator_response(
        PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )
    assert got == AUTHENTICATOR_RESPONSE
    assert m.check_authenticator_response(
        PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, AUTHENTICATOR_RESPONSE
    )
    # Lower-case hex is accepted; any other change is not.
    lower = AUTHENTICATOR_RESPONSE[:2] + AUTHENTICATOR_RESPONSE[2:].lower()
    assert m.check_authenticator_response(
        PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, lower
    )
    for bad in (
        AUTHENTICATOR_RESPONSE[:-1] + b"7",
        AUTHENTICATOR_RESPONSE[:-1],
        b"",
        b"X" + AUTHENTICATOR_RESPONSE[1:],
    ):
        assert not m.check_authenticator_response(
            PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, bad
        )


def test_rfc3079_master_and_start_keys() -> None:
    assert m.get_master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY
    # The authenticator's send key is the peer's receive key and vice versa (RFC 3079 3.3).
    server_send = m.get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True)
    assert server_send == SEND_START_KEY_128
    assert m.get_asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=False) == (
        server_send
    )
    server_recv = m.get_asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=True)
    assert server_recv == m.get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=False)
    assert server_recv != server_send
    # 40/56-bit variants take the first 8 bytes.
    assert m.get_asymmetric_start_key(MASTER_KEY, 8, True, True) == SEND_START_KEY_128[:8]


def test_msk_layout() -> None:
    keys = m.derive_master_keys(PASSWORD_HASH, NT_RESPONSE)
    assert keys.server_send == SEND_START_KEY_128
    # [MS-CHAP] 3.1.5.1: MSK = MasterReceiveKey + MasterSendKey + 32 zero bytes.
    assert keys.msk == keys.server_receive + SEND_START_KEY_128 + bytes(32)
    assert len(keys.msk) == m.MSK_LENGTH
    assert m.msk_from_master_key(MASTER_KEY) == keys.msk
    assert keys.peap_isk == keys.msk[:32]
    assert keys.fast_isk == SEND_START_KEY_128 + keys.server_receive
    assert "secret" in repr(keys) and SEND_START_KEY_128.hex() not in repr(keys).lower()


def test_strip_domain() -> None:
    assert m.strip_domain(b"CORP\\alice") == b"alice"
    assert m.strip_domain(b"alice@example.org") == b"alice@example.org"


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (m.hash_nt_password_hash, (b"\x00" * 15,)),
        (m.challenge_hash, (b"\x00" * 15, b"\x00" * 16, b"u")),
        (m.challenge_response, (b"\x00" * 7, PASSWORD_HASH)),
        (m.get_master_key, (PASSWORD_HASH_HASH, NT_RESPONSE[:-1])),
        (m.get_asymmetric_start_key, (MASTER_KEY, 5, True, True)),
    ],
)
def test_wrong_lengths_rejected(call: object, args: tuple[object, ...]) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call(*args)
