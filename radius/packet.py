"""RADIUS packets (RFC 2865 section 3) and their authenticators.

:class:`Packet` is the frozen, unsigned view of a packet.  The ``encode_*`` functions sign
it for the wire and the ``verify_*`` functions check a received datagram and return the
decoded packet:

* Access-Request / Status-Server: random Request Authenticator; Message-Authenticator
  (RFC 3579 section 3.2, HMAC-MD5 over the packet with that attribute zeroed) is always
  added, first, and always required on receipt unless the caller opts out (Blast-RADIUS,
  CVE-2024-3596: an Access-Request without it can be forged by an MD5 collision).
* Responses (Access-Accept/Reject/Challenge, CoA/Disconnect ACK/NAK): Message-Authenticator
  computed with the request's authenticator in the header and placed first (Accounting-Response
  has none, see :func:`encode_response`), then Response Authenticator = MD5(Code +
  Identifier + Length + Request Authenticator + Attributes + Secret) (RFC 2865 section 3).
* Accounting-Request (RFC 2866 section 3), CoA-Request and Disconnect-Request (RFC 5176
  section 2.3): Request Authenticator = MD5(Code + Identifier + Length + 16 zero octets +
  Attributes + Secret); a Message-Authenticator in them is computed over the zeroed header.

Every MAC is compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from radius.attributes import (
    Attribute,
    IntegerAttribute,
    StringAttribute,
    TextAttribute,
    decode_attribute_value,
    encode_attributes,
    iter_raw_attributes,
)
from radius.constants import (
    MAX_ATTRIBUTE_VALUE,
    MAX_PACKET_LENGTH,
    MIN_PACKET_LENGTH,
    AttributeType,
    Code,
)
from radius.errors import AuthenticatorError, LocalProtocolError, MalformedPacket

__all__ = [
    "AUTHENTICATOR_LENGTH",
    "Packet",
    "decode_packet",
    "eap_message_attributes",
    "encode_request",
    "encode_response",
    "verify_request",
    "verify_response",
]

AUTHENTICATOR_LENGTH = 16
_ZERO_AUTH = bytes(AUTHENTICATOR_LENGTH)
_HEADER = struct.Struct("!BBH16s")
_MA = AttributeType.MESSAGE_AUTHENTICATOR

_SELF_AUTHENTICATED = frozenset({Code.ACCESS_REQUEST, Code.STATUS_SERVER})
"""Requests whose authenticator is random and protected only by Message-Authenticator."""
_HASHED_REQUESTS = frozenset({Code.ACCOUNTING_REQUEST, Code.COA_REQUEST, Code.DISCONNECT_REQUEST})
"""Requests whose authenticator is an MD5 over the packet (RFC 2866 3, RFC 5176 2.3)."""
REQUEST_CODES = _SELF_AUTHENTICATED | _HASHED_REQUESTS


@dataclass(frozen=True, slots=True)
class Packet:
    """One RADIUS packet: code, identifier, authenticator and attributes in wire order."""

    code: Code
    identifier: int
    authenticator: bytes = _ZERO_AUTH
    attributes: tuple[Attribute, ...] = ()

    def get(self, attribute_type: int) -> Attribute | None:
        for attribute in self.attributes:
            if attribute.type == attribute_type:
                return attribute
        return None

    def get_all(self, attribute_type: int) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.type == attribute_type)

    def text(self, attribute_type: int) -> str | None:
        attribute = self.get(attribute_type)
        return attribute.value if isinstance(attribute, TextAttribute) else None

    def string(self, attribute_type: int) -> bytes | None:
        attribute = self.get(attribute_type)
        return attribute.value if isinstance(attribute, StringAttribute) else None

    def integer(self, attribute_type: int) -> int | None:
        attribute = self.get(attribute_type)
        return attribute.value if isinstance(attribute, IntegerAttribute) else None

    def eap_message(self) -> bytes | None:
        """RFC 3579 section 3.1: the EAP packet reassembled from every EAP-Message, in order."""
        parts = [
            a.value
            for a in self.attributes
            if a.type == AttributeType.EAP_MESSAGE and isinstance(a, StringAttribute)
        ]
        return b"".join(parts) if parts else None

    def encode(self) -> bytes:
        """The packet with its authenticator field as it stands (no signing)."""
        if len(self.authenticator) != AUTHENTICATOR_LENGTH:
            raise LocalProtocolError("authenticator must be 16 octets")
        if not 0 <= self.identifier <= 0xFF:
            raise LocalProtocolError(f"identifier {self.identifier} out of range")
        body = encode_attributes(self.attributes)
        length = MIN_PACKET_LENGTH + len(body)
        if length > MAX_PACKET_LENGTH:
            raise LocalProtocolError(f"packet of {length} octets exceeds 4096")
        return _HEADER.pack(self.code, self.identifier, length, self.authenticator) + body


def eap_message_attributes(eap_packet: bytes) -> tuple[StringAttribute, ...]:
    """RFC 3579 section 3.1: split an EAP packet into EAP-Message attributes of <= 253 octets."""
    if not eap_packet:
        raise LocalProtocolError("empty EAP packet")
    return tuple(
        StringAttribute(AttributeType.EAP_MESSAGE, eap_packet[i : i + MAX_ATTRIBUTE_VALUE])
        for i in range(0, len(eap_packet), MAX_ATTRIBUTE_VALUE)
    )


def decode_packet(data: bytes) -> Packet:
    """Parse a datagram (no authenticator check; see :func:`verify_request`).

    RFC 2865 section 3: a datagram shorter than its Length field is discarded; octets past
    the Length are padding and ignored.  The attributes must fill the Length exactly.
    """
    return _decode(data)[0]


def _decode(data: bytes) -> tuple[Packet, list[int]]:
    """:func:`decode_packet`, and the offsets of the Message-Authenticator values in
    ``data`` (so that checking them does not walk the attributes again)."""
    if len(data) < MIN_PACKET_LENGTH:
        raise MalformedPacket(f"datagram of {len(data)} octets is shorter than a header")
    code, identifier, length, authenticator = _HEADER.unpack_from(data)
    if not MIN_PACKET_LENGTH <= length <= MAX_PACKET_LENGTH:
        raise MalformedPacket(f"Length field {length} outside 20..4096")
    if length > len(data):
        raise MalformedPacket(f"Length field {length} exceeds the {len(data)}-octet datagram")
    try:
        packet_code = Code(code)
    except ValueError:
        raise MalformedPacket(f"unknown RADIUS code {code}") from None
    body = data[MIN_PACKET_LENGTH:length]
    attributes: list[Attribute] = []
    ma_offsets: list[int] = []
    for attribute_type, start, end in iter_raw_attributes(body):
        if attribute_type == _MA:
            ma_offsets.append(MIN_PACKET_LENGTH + start)
        attributes.append(decode_attribute_value(attribute_type, body[start:end]))
    packet = Packet(packet_code, identifier, authenticator, tuple(attributes))
    _check_eap_and_ma(packet, len(ma_offsets))
    return packet, ma_offsets


def _check_eap_and_ma(packet: Packet, count: int) -> None:
    if count > 1:
        raise MalformedPacket("more than one Message-Authenticator (RFC 3579 section 3.2)")
    eap = packet.eap_message()
    if eap is not None:
        if count == 0:
            raise AuthenticatorError("EAP-Message without Message-Authenticator (RFC 3579 3.2)")
        if eap == b"":
            return  # EAP-Start (RFC 3579 section 3.1)
        if len(eap) < 4 or int.from_bytes(eap[2:4], "big") != len(eap):
            raise MalformedPacket("reassembled EAP-Message does not match its EAP Length")


def _md5(*parts: bytes) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part)
    return digest.digest()


def _with_ma_first(attributes: Sequence[Attribute]) -> tuple[Attribute, ...]:
    rest = tuple(a for a in attributes if a.type != _MA)
    return (StringAttribute(_MA, _ZERO_AUTH), *rest)


def _message_authenticator(
    raw: bytes, secret: bytes, header_authenticator: bytes, offsets: Sequence[int]
) -> bytes:
    """HMAC-MD5 over ``raw`` with the header authenticator replaced and MA zeroed
    (``offsets``: where the MA values are in ``raw``, from :func:`_decode`)."""
    length = int.from_bytes(raw[2:4], "big")
    buf = bytearray(raw[:length])
    buf[4:20] = header_authenticator
    for start in offsets:
        buf[start : start + AUTHENTICATOR_LENGTH] = _ZERO_AUTH
    return hmac.digest(secret, buf, "md5")


_MA_FIRST = bytes([_MA, 2 + AUTHENTICATOR_LENGTH])
_MA_VALUE = MIN_PACKET_LENGTH + 2
"""Where the value of a Message-Authenticator placed first (:func:`_with_ma_first`) is."""


def _sign_ma_first(raw: bytes, secret: bytes) -> bytes:
    """Fill in the zeroed Message-Authenticator that :func:`_with_ma_first` put first: the
    HMAC-MD5 over ``raw`` as it stands (its header already carries the authenticator the
    MAC covers, and it holds no other Message-Authenticator)."""
    if raw[MIN_PACKET_LENGTH : MIN_PACKET_LENGTH + 2] != _MA_FIRST:  # pragma: no cover
        raise LocalProtocolError("Message-Authenticator is not the first attribute")
    mac = hmac.digest(secret, raw, "md5")
    return raw[:_MA_VALUE] + mac + raw[_MA_VALUE + AUTHENTICATOR_LENGTH :]


def encode_request(
    packet: Packet, secret: bytes, *, message_authenticator: bool | None = None
) -> bytes:
    """Sign a request for the wire.

    Access-Request and Status-Server keep ``packet.authenticator`` (the caller draws it
    from a CSPRNG) and always get a Message-Authenticator first.  Accounting, CoA and
    Disconnect requests get the hashed Request Authenticator; with
    ``message_authenticator=True`` (the default when they carry EAP-Message) they carry a
    Message-Authenticator too.
    """
    if packet.code in _SELF_AUTHENTICATED:
        if message_authenticator is False:
            raise LocalProtocolError("Access-Request is always sent with Message-Authenticator")
        raw = replace(packet, attributes=_with_ma_first(packet.attributes)).encode()
        return _sign_ma_first(raw, secret)
    if packet.code not in _HASHED_REQUESTS:
        raise LocalProtocolError(f"{packet.code.name} is not a request")
    if message_authenticator is None:
        message_authenticator = packet.eap_message() is not None
    attributes = (
        _with_ma_first(packet.attributes)
        if message_authenticator
        else tuple(a for a in packet.attributes if a.type != _MA)
    )
    raw = replace(packet, authenticator=_ZERO_AUTH, attributes=attributes).encode()
    if message_authenticator:
        raw = _sign_ma_first(raw, secret)
    return raw[:4] + _md5(raw, secret) + raw[20:]


def encode_response(packet: Packet, request_authenticator: bytes, secret: bytes) -> bytes:
    """Sign a response: Message-Authenticator first (Blast-RADIUS), then the Response
    Authenticator over the request's authenticator (RFC 2865 section 3, RFC 3579 3.2).

    Accounting-Response carries no Message-Authenticator: RFC 2866 allows only Proxy-State
    and Vendor-Specific in it, and implementations disagree on how one would be computed
    (FreeRADIUS's radclient computes it over a zeroed authenticator and refuses ours).
    """
    if packet.code in REQUEST_CODES:
        raise LocalProtocolError(f"{packet.code.name} is not a response")
    if len(request_authenticator) != AUTHENTICATOR_LENGTH:
        raise LocalProtocolError("request authenticator must be 16 octets")
    if packet.code == Code.ACCOUNTING_RESPONSE:
        attributes = tuple(a for a in packet.attributes if a.type != _MA)
        raw = replace(packet, authenticator=request_authenticator, attributes=attributes).encode()
        return raw[:4] + _md5(raw, secret) + raw[20:]
    raw = Packet(
        packet.code, packet.identifier, request_authenticator, _with_ma_first(packet.attributes)
    ).encode()
    raw = _sign_ma_first(raw, secret)
    return raw[:4] + _md5(raw, secret) + raw[20:]


def _check_ma(
    raw: bytes,
    packet: Packet,
    secret: bytes,
    header_authenticator: bytes,
    offsets: Sequence[int],
) -> None:
    received = packet.string(_MA)
    if received is None:
        return
    expected = _message_authenticator(raw, secret, header_authenticator, offsets)
    if not hmac.compare_digest(received, expected):
        raise AuthenticatorError("Message-Authenticator does not verify")


def verify_request(
    data: bytes, secret: bytes, *, require_message_authenticator: bool = True
) -> Packet:
    """Decode a request and check its authenticators; raise :class:`RemoteProtocolError`.

    Access-Request / Status-Server: Message-Authenticator is required (unless the caller
    opts out, for legacy NASes) and checked.  Accounting / CoA / Disconnect: the hashed
    Request Authenticator is checked, and Message-Authenticator if present.
    """
    packet, offsets = _decode(data)
    raw = data[: int.from_bytes(data[2:4], "big")]
    if packet.code in _SELF_AUTHENTICATED:
        if packet.get(_MA) is None and (
            require_message_authenticator or packet.code == Code.STATUS_SERVER
        ):
            raise AuthenticatorError(f"{packet.code.name} without Message-Authenticator")
        _check_ma(raw, packet, secret, packet.authenticator, offsets)
        return packet
    if packet.code in _HASHED_REQUESTS:
        expected = _md5(raw[:4], _ZERO_AUTH, raw[20:], secret)
        if not hmac.compare_digest(packet.authenticator, expected):
            raise AuthenticatorError(f"{packet.code.name} Request Authenticator does not verify")
        _check_ma(raw, packet, secret, _ZERO_AUTH, offsets)
        return packet
    raise MalformedPacket(f"{packet.code.name} is not a request")


def verify_response(
    data: bytes,
    request_authenticator: bytes,
    secret: bytes,
    *,
    require_message_authenticator: bool = False,
) -> Packet:
    """Decode a response to the request with ``request_authenticator`` and check it."""
    packet, offsets = _decode(data)
    if packet.code in REQUEST_CODES:
        raise MalformedPacket(f"{packet.code.name} is not a response")
    raw = data[: int.from_bytes(data[2:4], "big")]
    expected = _md5(raw[:4], request_authenticator, raw[20:], secret)
    if not hmac.compare_digest(packet.authenticator, expected):
        raise AuthenticatorError("Response Authenticator does not verify")
    if packet.get(_MA) is None and require_message_authenticator:
        raise AuthenticatorError("response without Message-Authenticator")
    _check_ma(raw, packet, secret, request_authenticator, offsets)
    return packet
