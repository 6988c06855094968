"""Request/Response Authenticators, Message-Authenticator and the hidden values."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radius import (
    AttributeType,
    AuthenticatorError,
    Code,
    MalformedPacket,
    Packet,
    StringAttribute,
    TextAttribute,
    decode_packet,
    decrypt_mppe_key,
    eap_message_attributes,
    encode_request,
    encode_response,
    encrypt_mppe_key,
    hide_password,
    unhide_password,
    verify_request,
    verify_response,
)
from radius.errors import LocalProtocolError, MalformedAttribute

T = AttributeType
SECRET = b"testing123"
RA = bytes(range(16))
EAP_IDENTITY = bytes([2, 1, 0, 8, 1]) + b"bob"


def _access_request(*attributes: object) -> bytes:
    packet = Packet(Code.ACCESS_REQUEST, 7, RA, tuple(attributes))  # type: ignore[arg-type]
    return encode_request(packet, SECRET)


def test_access_request_gets_message_authenticator_first_and_verifies() -> None:
    raw = _access_request(TextAttribute(T.USER_NAME, "bob"), *eap_message_attributes(EAP_IDENTITY))
    packet = decode_packet(raw)
    assert packet.attributes[0].type == T.MESSAGE_AUTHENTICATOR
    # Recompute by hand (RFC 3579 section 3.2).
    zeroed = raw[:22] + bytes(16) + raw[38:]
    assert packet.string(T.MESSAGE_AUTHENTICATOR) == hmac.digest(SECRET, zeroed, "md5")
    assert verify_request(raw, SECRET) == packet
    assert packet.eap_message() == EAP_IDENTITY


def test_access_request_with_wrong_secret_or_flipped_bit_fails() -> None:
    raw = _access_request(TextAttribute(T.USER_NAME, "bob"))
    with pytest.raises(AuthenticatorError):
        verify_request(raw, b"other")
    for position in (1, 5, 25, len(raw) - 1):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        with pytest.raises((AuthenticatorError, MalformedPacket)):
            verify_request(bytes(tampered), SECRET)


def test_access_request_without_message_authenticator_is_refused() -> None:
    raw = Packet(Code.ACCESS_REQUEST, 1, RA, (TextAttribute(T.USER_NAME, "bob"),)).encode()
    with pytest.raises(AuthenticatorError, match="without Message-Authenticator"):
        verify_request(raw, SECRET)
    assert verify_request(raw, SECRET, require_message_authenticator=False).identifier == 1


def test_eap_message_without_message_authenticator_is_refused_even_when_opted_out() -> None:
    raw = Packet(Code.ACCESS_REQUEST, 1, RA, eap_message_attributes(EAP_IDENTITY)).encode()
    with pytest.raises(AuthenticatorError):
        verify_request(raw, SECRET, require_message_authenticator=False)


def test_two_message_authenticators_are_malformed() -> None:
    ma = StringAttribute(T.MESSAGE_AUTHENTICATOR, bytes(16))
    raw = Packet(Code.ACCESS_REQUEST, 1, RA, (ma, ma)).encode()
    with pytest.raises(MalformedPacket):
        decode_packet(raw)


def test_response_has_message_authenticator_first_and_response_authenticator() -> None:
    answer = Packet(Code.ACCESS_CHALLENGE, 7, attributes=(StringAttribute(T.STATE, b"s1"),))
    raw = encode_response(answer, RA, SECRET)
    packet = verify_response(raw, RA, SECRET, require_message_authenticator=True)
    assert packet.attributes[0].type == T.MESSAGE_AUTHENTICATOR
    # Response Authenticator by hand (RFC 2865 section 3).
    assert raw[4:20] == hashlib.md5(raw[:4] + RA + raw[20:] + SECRET).digest()
    # Message-Authenticator by hand: computed with the Request Authenticator in the header.
    buf = raw[:4] + RA + raw[20:22] + bytes(16) + raw[38:]
    assert raw[22:38] == hmac.digest(SECRET, buf, "md5")
    with pytest.raises(AuthenticatorError):
        verify_response(raw, bytes(16), SECRET)


def test_response_message_authenticator_forgery_is_caught() -> None:
    raw = bytearray(encode_response(Packet(Code.ACCESS_ACCEPT, 7), RA, SECRET))
    raw[22] ^= 1  # break the MA and fix up the Response Authenticator
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + RA + bytes(raw[20:]) + SECRET).digest()
    with pytest.raises(AuthenticatorError, match="Message-Authenticator"):
        verify_response(bytes(raw), RA, SECRET)


@pytest.mark.parametrize(
    "code", [Code.ACCOUNTING_REQUEST, Code.COA_REQUEST, Code.DISCONNECT_REQUEST]
)
def test_hashed_request_authenticator(code: Code) -> None:
    packet = Packet(code, 3, attributes=(TextAttribute(T.USER_NAME, "bob"),))
    raw = encode_request(packet, SECRET)
    # RFC 2866 section 3 / RFC 5176 section 2.3.
    assert raw[4:20] == hashlib.md5(raw[:4] + bytes(16) + raw[20:] + SECRET).digest()
    assert verify_request(raw, SECRET).text(T.USER_NAME) == "bob"
    with pytest.raises(AuthenticatorError):
        verify_request(raw, b"other")
    with_ma = encode_request(packet, SECRET, message_authenticator=True)
    assert verify_request(with_ma, SECRET).attributes[0].type == T.MESSAGE_AUTHENTICATOR
    bad = bytearray(with_ma)
    bad[22] ^= 1
    bad[4:20] = hashlib.md5(bytes(bad[:4]) + bytes(16) + bytes(bad[20:]) + SECRET).digest()
    with pytest.raises(AuthenticatorError, match="Message-Authenticator"):
        verify_request(bytes(bad), SECRET)


def test_response_codes_cannot_be_signed_as_requests() -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(Packet(Code.ACCESS_ACCEPT, 1), SECRET)
    with pytest.raises(LocalProtocolError):
        encode_response(Packet(Code.ACCESS_REQUEST, 1), RA, SECRET)


@settings(max_examples=200)
@given(st.binary(max_size=128).map(lambda b: b.rstrip(b"\x00")), st.binary(min_size=1, max_size=40))
def test_user_password_roundtrip(password: bytes, secret: bytes) -> None:
    hidden = hide_password(password, secret, RA)
    assert len(hidden) % 16 == 0 and 16 <= len(hidden) <= 128
    assert unhide_password(hidden, secret, RA) == password


def test_user_password_bad_lengths() -> None:
    with pytest.raises(LocalProtocolError):
        hide_password(bytes(129), SECRET, RA)
    with pytest.raises(MalformedAttribute):
        unhide_password(bytes(17), SECRET, RA)


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=64), st.binary(min_size=2, max_size=2))
def test_mppe_key_roundtrip(key: bytes, salt: bytes) -> None:
    salt = bytes([salt[0] | 0x80, salt[1]])
    value = encrypt_mppe_key(key, SECRET, RA, salt)
    assert value[:2] == salt and (len(value) - 2) % 16 == 0
    assert decrypt_mppe_key(value, SECRET, RA) == key
    try:
        assert decrypt_mppe_key(value, b"wrong", RA) != key
    except MalformedAttribute:
        pass  # the garbled length octet exceeds the ciphertext


def test_mppe_key_first_block_by_hand() -> None:
    # RFC 2548 section 2.4.2: c(1) = p(1) xor MD5(S + R + A).
    key = bytes(range(32))
    salt = b"\x80\x01"
    value = encrypt_mppe_key(key, SECRET, RA, salt)
    pad = hashlib.md5(SECRET + RA + salt).digest()
    plain = bytes([32]) + key[:15]
    assert value[2:18] == bytes(a ^ b for a, b in zip(plain, pad, strict=True))


def test_mppe_salt_without_high_bit_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encrypt_mppe_key(b"k", SECRET, RA, b"\x00\x01")
    with pytest.raises(MalformedAttribute):
        decrypt_mppe_key(b"\x00\x01" + bytes(16), SECRET, RA)


def test_accounting_response_has_no_message_authenticator() -> None:
    raw = encode_response(Packet(Code.ACCOUNTING_RESPONSE, 4), RA, SECRET)
    assert len(raw) == 20
    assert raw[4:20] == hashlib.md5(raw[:4] + RA + SECRET).digest()
