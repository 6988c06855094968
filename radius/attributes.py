"""RADIUS attributes: one frozen type per attribute *kind* and a registry ``{type: kind}``.

RFC 2865 section 5 lays every attribute out as Type (1), Length (1, counting the two header
octets) and Value; RFC 8044 names the value kinds (text, string, integer, ipv4addr, ...).
Each kind below parses and serialises its value and checks its length exactly; the
registry :data:`ATTRIBUTE_KINDS` says which kind a type has and what lengths it allows.
Types the registry does not know come back as :class:`UnknownAttribute`, intact, so a proxy
or a log keeps them (house style: unknown types are kept, not dropped).

Vendor-Specific (type 26, RFC 2865 section 5.26) is parsed into vendor sub-attributes when
its payload follows the format the RFC recommends (Microsoft's, RFC 2548, does) and kept as
:class:`OpaqueVendorSpecific` otherwise.  Tagged attributes (RFC 2868 section 3) carry their
tag.  Encrypted values (User-Password, MS-MPPE-*-Key) are kept as the ciphertext here; see
:mod:`radius.crypto` for hiding and unhiding them.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from radius.constants import MAX_ATTRIBUTE_VALUE, VENDOR_MICROSOFT, AttributeType
from radius.errors import LocalProtocolError, MalformedAttribute, MalformedPacket

__all__ = [
    "ATTRIBUTE_KINDS",
    "AddressAttribute",
    "Attribute",
    "IntegerAttribute",
    "Ipv6AddressAttribute",
    "OpaqueVendorSpecific",
    "StringAttribute",
    "TaggedIntegerAttribute",
    "TaggedStringAttribute",
    "TextAttribute",
    "UnknownAttribute",
    "VendorAttribute",
    "VendorSpecific",
    "decode_attribute_value",
    "decode_attributes",
    "encode_attributes",
    "iter_raw_attributes",
    "microsoft",
]

MAX_TAG = 0x1F
"""RFC 2868 section 3: tags run from 0x01 to 0x1F; 0x00 means "no tunnel group"."""


def _check_value_length(attribute_type: int, data: bytes, minimum: int, maximum: int) -> None:
    if not minimum <= len(data) <= maximum:
        raise MalformedAttribute(
            f"attribute {attribute_type}: value of {len(data)} octets, "
            f"expected {minimum}..{maximum}",
            attribute_type=attribute_type,
        )


@dataclass(frozen=True, slots=True)
class TextAttribute:
    """RFC 8044 section 3.4 "text": UTF-8, 1..253 octets (User-Name, Reply-Message, ...)."""

    type: int
    value: str

    def encode_value(self) -> bytes:
        return self.value.encode("utf-8")


@dataclass(frozen=True, slots=True)
class StringAttribute:
    """RFC 8044 section 3.5 "string": opaque octets (State, Class, EAP-Message, ...)."""

    type: int
    value: bytes

    def encode_value(self) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class IntegerAttribute:
    """RFC 8044 section 3.1 "integer" (and 3.3 "time"): 32-bit unsigned, exactly 4 octets."""

    type: int
    value: int

    def encode_value(self) -> bytes:
        if not 0 <= self.value <= 0xFFFFFFFF:
            raise LocalProtocolError(f"attribute {self.type}: integer {self.value} out of range")
        return struct.pack("!I", self.value)


@dataclass(frozen=True, slots=True)
class AddressAttribute:
    """RFC 8044 section 3.8 "ipv4addr": exactly 4 octets."""

    type: int
    value: ipaddress.IPv4Address

    def encode_value(self) -> bytes:
        return self.value.packed


@dataclass(frozen=True, slots=True)
class Ipv6AddressAttribute:
    """RFC 8044 section 3.9 "ipv6addr": exactly 16 octets (NAS-IPv6-Address, RFC 3162)."""

    type: int
    value: ipaddress.IPv6Address

    def encode_value(self) -> bytes:
        return self.value.packed


@dataclass(frozen=True, slots=True)
class TaggedIntegerAttribute:
    """RFC 2868 sections 3.1/3.2: one tag octet and a 3-octet integer (Tunnel-Type, ...)."""

    type: int
    tag: int
    value: int

    def encode_value(self) -> bytes:
        if not 0 <= self.tag <= 0xFF or not 0 <= self.value <= 0xFFFFFF:
            raise LocalProtocolError(f"attribute {self.type}: tag or value out of range")
        return bytes([self.tag]) + self.value.to_bytes(3, "big")


@dataclass(frozen=True, slots=True)
class TaggedStringAttribute:
    """RFC 2868 section 3.6 style: an optional tag octet (0x00..0x1F) before a string.

    A first octet above 0x1F is the start of the string, not a tag (``tag`` is None then).
    """

    type: int
    tag: int | None
    value: bytes

    def encode_value(self) -> bytes:
        if self.tag is None:
            if self.value and self.value[0] <= MAX_TAG:
                raise LocalProtocolError(
                    f"attribute {self.type}: untagged value starting with {self.value[0]:#x} "
                    "would read as a tag"
                )
            return self.value
        if not 0 <= self.tag <= MAX_TAG:
            raise LocalProtocolError(f"attribute {self.type}: tag {self.tag} out of range")
        return bytes([self.tag]) + self.value


@dataclass(frozen=True, slots=True)
class VendorAttribute:
    """One vendor sub-attribute in the RFC 2865 section 5.26 recommended format."""

    vendor_type: int
    value: bytes

    def encode(self) -> bytes:
        if len(self.value) > MAX_ATTRIBUTE_VALUE - 6:
            raise LocalProtocolError(f"vendor attribute {self.vendor_type}: value too long")
        return bytes([self.vendor_type, len(self.value) + 2]) + self.value


@dataclass(frozen=True, slots=True)
class VendorSpecific:
    """RFC 2865 section 5.26: Vendor-Id and vendor sub-attributes (type, length, value)."""

    vendor_id: int
    attributes: tuple[VendorAttribute, ...]
    type: ClassVar[int] = AttributeType.VENDOR_SPECIFIC

    def encode_value(self) -> bytes:
        return struct.pack("!I", self.vendor_id) + b"".join(a.encode() for a in self.attributes)

    def get(self, vendor_type: int) -> VendorAttribute | None:
        for attribute in self.attributes:
            if attribute.vendor_type == vendor_type:
                return attribute
        return None


@dataclass(frozen=True, slots=True)
class OpaqueVendorSpecific:
    """RFC 2865 section 5.26 payload that is not in the recommended format: kept as is."""

    vendor_id: int
    data: bytes
    type: ClassVar[int] = AttributeType.VENDOR_SPECIFIC

    def encode_value(self) -> bytes:
        return struct.pack("!I", self.vendor_id) + self.data


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute whose type the registry does not know, or whose text is not UTF-8
    (RFC 6929 section 2.8: an invalid attribute is treated as an unknown one)."""

    type: int
    value: bytes

    def encode_value(self) -> bytes:
        return self.value


Attribute = (
    TextAttribute
    | StringAttribute
    | IntegerAttribute
    | AddressAttribute
    | Ipv6AddressAttribute
    | TaggedIntegerAttribute
    | TaggedStringAttribute
    | VendorSpecific
    | OpaqueVendorSpecific
    | UnknownAttribute
)

_Kind = (
    type[TextAttribute]
    | type[StringAttribute]
    | type[IntegerAttribute]
    | type[AddressAttribute]
    | type[Ipv6AddressAttribute]
    | type[TaggedIntegerAttribute]
    | type[TaggedStringAttribute]
    | type[VendorSpecific]
)


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: _Kind
    minimum: int
    maximum: int = MAX_ATTRIBUTE_VALUE


_T = AttributeType
_TEXT = _Spec(TextAttribute, 1)
_STRING = _Spec(StringAttribute, 1)
_INT = _Spec(IntegerAttribute, 4, 4)
_ADDR = _Spec(AddressAttribute, 4, 4)

ATTRIBUTE_KINDS: dict[int, _Spec] = {
    _T.USER_NAME: _TEXT,
    # RFC 2865 section 5.2: 16..128 octets, a multiple of 16 (checked when unhiding).
    _T.USER_PASSWORD: _Spec(StringAttribute, 16, 128),
    _T.CHAP_PASSWORD: _Spec(StringAttribute, 17, 17),
    _T.NAS_IP_ADDRESS: _ADDR,
    _T.NAS_PORT: _INT,
    _T.SERVICE_TYPE: _INT,
    _T.FRAMED_PROTOCOL: _INT,
    _T.FRAMED_IP_ADDRESS: _ADDR,
    _T.FRAMED_IP_NETMASK: _ADDR,
    _T.FRAMED_ROUTING: _INT,
    _T.FILTER_ID: _TEXT,
    _T.FRAMED_MTU: _INT,
    _T.FRAMED_COMPRESSION: _INT,
    _T.LOGIN_IP_HOST: _ADDR,
    _T.LOGIN_SERVICE: _INT,
    _T.LOGIN_TCP_PORT: _INT,
    _T.REPLY_MESSAGE: _TEXT,
    _T.CALLBACK_NUMBER: _STRING,
    _T.CALLBACK_ID: _STRING,
    _T.FRAMED_ROUTE: _TEXT,
    _T.STATE: _STRING,
    _T.CLASS: _STRING,
    # RFC 2865 section 5.26: Vendor-Id (4) and at least one octet of payload.
    _T.VENDOR_SPECIFIC: _Spec(VendorSpecific, 5),
    _T.SESSION_TIMEOUT: _INT,
    _T.IDLE_TIMEOUT: _INT,
    _T.TERMINATION_ACTION: _INT,
    _T.CALLED_STATION_ID: _TEXT,
    _T.CALLING_STATION_ID: _TEXT,
    _T.NAS_IDENTIFIER: _TEXT,
    _T.PROXY_STATE: _STRING,
    _T.ACCT_STATUS_TYPE: _INT,
    _T.ACCT_DELAY_TIME: _INT,
    _T.ACCT_INPUT_OCTETS: _INT,
    _T.ACCT_OUTPUT_OCTETS: _INT,
    _T.ACCT_SESSION_ID: _TEXT,
    _T.ACCT_AUTHENTIC: _INT,
    _T.ACCT_SESSION_TIME: _INT,
    _T.ACCT_INPUT_PACKETS: _INT,
    _T.ACCT_OUTPUT_PACKETS: _INT,
    _T.ACCT_TERMINATE_CAUSE: _INT,
    _T.ACCT_MULTI_SESSION_ID: _TEXT,
    _T.ACCT_LINK_COUNT: _INT,
    _T.ACCT_INPUT_GIGAWORDS: _INT,
    _T.ACCT_OUTPUT_GIGAWORDS: _INT,
    _T.EVENT_TIMESTAMP: _INT,
    _T.CHAP_CHALLENGE: _STRING,
    _T.NAS_PORT_TYPE: _INT,
    _T.PORT_LIMIT: _INT,
    _T.TUNNEL_TYPE: _Spec(TaggedIntegerAttribute, 4, 4),
    _T.TUNNEL_MEDIUM_TYPE: _Spec(TaggedIntegerAttribute, 4, 4),
    # RFC 2868 section 3.5: tag, 2-octet salt and at least 16 octets of ciphertext.
    _T.TUNNEL_PASSWORD: _Spec(StringAttribute, 19),
    _T.CONNECT_INFO: _TEXT,
    # RFC 3579 section 3.1: an empty EAP-Message from the NAS is "EAP-Start".
    _T.EAP_MESSAGE: _Spec(StringAttribute, 0),
    # RFC 3579 section 3.2: always 16 octets.
    _T.MESSAGE_AUTHENTICATOR: _Spec(StringAttribute, 16, 16),
    _T.TUNNEL_PRIVATE_GROUP_ID: _Spec(TaggedStringAttribute, 1),
    _T.ACCT_INTERIM_INTERVAL: _INT,
    _T.NAS_PORT_ID: _TEXT,
    _T.NAS_IPV6_ADDRESS: _Spec(Ipv6AddressAttribute, 16, 16),
    _T.FRAMED_INTERFACE_ID: _Spec(StringAttribute, 8, 8),
    _T.ERROR_CAUSE: _INT,
}
"""The registry: attribute type -> kind and allowed value length (RFC 2865 section 5 and the
RFCs cited in :class:`radius.constants.AttributeType`)."""


def _decode_vendor_specific(data: bytes) -> VendorSpecific | OpaqueVendorSpecific:
    (vendor_id,) = struct.unpack_from("!I", data)
    payload = data[4:]
    subs: list[VendorAttribute] = []
    offset = 0
    while offset < len(payload):
        if len(payload) - offset < 2 or payload[offset + 1] < 2:
            return OpaqueVendorSpecific(vendor_id, payload)
        length = payload[offset + 1]
        if offset + length > len(payload):
            return OpaqueVendorSpecific(vendor_id, payload)
        subs.append(VendorAttribute(payload[offset], payload[offset + 2 : offset + length]))
        offset += length
    return VendorSpecific(vendor_id, tuple(subs))


def decode_attribute_value(attribute_type: int, data: bytes) -> Attribute:
    """One attribute from its type and value octets (the value length is checked)."""
    spec = ATTRIBUTE_KINDS.get(attribute_type)
    if spec is None:
        return UnknownAttribute(attribute_type, data)
    _check_value_length(attribute_type, data, spec.minimum, spec.maximum)
    kind = spec.kind
    if kind is TextAttribute:
        try:
            return TextAttribute(attribute_type, data.decode("utf-8"))
        except UnicodeDecodeError:
            return UnknownAttribute(attribute_type, data)
    if kind is StringAttribute:
        return StringAttribute(attribute_type, data)
    if kind is IntegerAttribute:
        return IntegerAttribute(attribute_type, struct.unpack("!I", data)[0])
    if kind is AddressAttribute:
        return AddressAttribute(attribute_type, ipaddress.IPv4Address(data))
    if kind is Ipv6AddressAttribute:
        return Ipv6AddressAttribute(attribute_type, ipaddress.IPv6Address(data))
    if kind is TaggedIntegerAttribute:
        return TaggedIntegerAttribute(attribute_type, data[0], int.from_bytes(data[1:], "big"))
    if kind is TaggedStringAttribute:
        if data[0] <= MAX_TAG:
            return TaggedStringAttribute(attribute_type, data[0], data[1:])
        return TaggedStringAttribute(attribute_type, None, data)
    return _decode_vendor_specific(data)


def iter_raw_attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, int, int]]:
    """Walk an attribute area: yield ``(type, value_start, value_end)`` per attribute.

    Raises :class:`MalformedPacket` unless the attributes consume ``data[offset:]`` exactly.
    """
    while offset < len(data):
        if len(data) - offset < 2:
            raise MalformedPacket(f"attribute header truncated at offset {offset}")
        attribute_type, length = data[offset], data[offset + 1]
        if length < 2:
            raise MalformedPacket(f"attribute {attribute_type}: length {length} below 2")
        if offset + length > len(data):
            raise MalformedPacket(
                f"attribute {attribute_type}: length {length} overruns the packet"
            )
        yield attribute_type, offset + 2, offset + length
        offset += length


def decode_attributes(data: bytes) -> tuple[Attribute, ...]:
    """Parse an attribute area that must be consumed exactly."""
    return tuple(
        decode_attribute_value(attribute_type, data[start:end])
        for attribute_type, start, end in iter_raw_attributes(data)
    )


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    out = bytearray()
    for attribute in attributes:
        value = attribute.encode_value()
        if len(value) > MAX_ATTRIBUTE_VALUE:
            raise LocalProtocolError(
                f"attribute {attribute.type}: value of {len(value)} octets exceeds 253"
            )
        spec = ATTRIBUTE_KINDS.get(attribute.type)
        if spec is not None and not isinstance(attribute, UnknownAttribute):
            if not spec.minimum <= len(value) <= spec.maximum:
                raise LocalProtocolError(
                    f"attribute {attribute.type}: value of {len(value)} octets, "
                    f"expected {spec.minimum}..{spec.maximum}"
                )
        out += bytes([attribute.type, len(value) + 2]) + value
    return bytes(out)


def microsoft(*attributes: VendorAttribute) -> VendorSpecific:
    """A Vendor-Specific attribute for Microsoft (vendor 311, RFC 2548)."""
    return VendorSpecific(VENDOR_MICROSOFT, attributes)
