"""EAP packet codec (RFC 3748 section 4 and 5).

One frozen type per wire message: :class:`EapRequest`, :class:`EapResponse`,
:class:`EapSuccess`, :class:`EapFailure`.  ``parse`` checks the Length field exactly: a packet
shorter than its Length, or (unless ``allow_padding``) longer, is :class:`MalformedPacket`.
Unknown method types are kept as plain ``int`` with their Type-Data intact.

The Nak helpers cover the legacy Nak (type 3, RFC 3748 5.3.1) and the Expanded Nak (type 254,
vendor 0, vendor-type 3, RFC 3748 5.3.2).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "EapCode",
    "EapError",
    "EapFailure",
    "EapPacket",
    "EapRequest",
    "EapResponse",
    "EapStateError",
    "EapSuccess",
    "EapType",
    "ExpandedType",
    "MalformedPacket",
    "encode_expanded",
    "encode_expanded_nak",
    "encode_nak",
    "parse",
    "parse_expanded",
    "parse_expanded_nak",
    "parse_nak",
    "type_name",
]


class EapError(Exception):
    """Root of every error raised by ``ike.eap``.

    EAP has no error code on the wire (RFC 3748 silently discards what it cannot use), so the
    subclasses carry what a log line needs instead.
    """


class MalformedPacket(EapError):
    """The remote side sent bytes that are not a valid EAP packet (or Type-Data)."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


class EapStateError(EapError):
    """Local misuse of an engine (for example ``start()`` twice)."""


class EapCode(enum.IntEnum):
    """EAP Codes, RFC 3748 section 4 (IANA "EAP Registry: Codes")."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(enum.IntEnum):
    """EAP method types (IANA "EAP Registry: Method Types"; the RFC of each is noted)."""

    IDENTITY = 1  # RFC 3748 5.1
    NOTIFICATION = 2  # RFC 3748 5.2
    NAK = 3  # RFC 3748 5.3.1 (legacy Nak, Response only)
    MD5_CHALLENGE = 4  # RFC 3748 5.4
    OTP = 5  # RFC 3748 5.5
    GTC = 6  # RFC 3748 5.6
    TLS = 13  # RFC 5216, RFC 9190
    TTLS = 21  # RFC 5281
    PEAP = 25  # draft-josefsson-pppext-eap-tls-eap
    MSCHAPV2 = 26  # draft-kamath-pppext-eap-mschapv2
    TNC = 38  # TCG EAP-TNC (IF-T for tunneled EAP methods)
    FAST = 43  # RFC 4851
    PT_EAP = 54  # RFC 7171
    EXPANDED = 254  # RFC 3748 5.7 (Expanded Types; vendor 0 type 3 is the Expanded Nak)
    EXPERIMENTAL = 255  # RFC 3748 5.8


_TYPE_NAMES = {
    EapType.MD5_CHALLENGE: "EAP-MD5",
    EapType.GTC: "EAP-GTC",
    EapType.TLS: "EAP-TLS",
    EapType.TTLS: "EAP-TTLS",
    EapType.PEAP: "PEAP",
    EapType.MSCHAPV2: "EAP-MSCHAPv2",
    EapType.TNC: "EAP-TNC",
    EapType.FAST: "EAP-FAST",
    EapType.PT_EAP: "PT-EAP",
}


def type_name(eap_type: int) -> str:
    """Readable name of a method type for log lines (``EAP-26`` for unknown types)."""
    try:
        known = EapType(eap_type)
    except ValueError:
        return f"EAP-{eap_type}"
    return _TYPE_NAMES.get(known, known.name)


_HEADER = struct.Struct("!BBH")
_MAX_LENGTH = 0xFFFF


def _check_identifier(identifier: int) -> None:
    if not 0 <= identifier <= 0xFF:
        raise ValueError(f"EAP identifier out of range: {identifier}")


@dataclass(frozen=True, slots=True)
class EapRequest:
    """Code 1: a Request of method ``eap_type`` with its Type-Data (RFC 3748 4.1)."""

    identifier: int
    eap_type: int
    type_data: bytes = b""

    def __post_init__(self) -> None:
        _check_identifier(self.identifier)
        if not 1 <= self.eap_type <= 0xFF:
            raise ValueError(f"EAP type out of range: {self.eap_type}")
        if len(self.type_data) > _MAX_LENGTH - 5:
            raise ValueError("EAP Type-Data too long")

    def to_bytes(self) -> bytes:
        return (
            _HEADER.pack(EapCode.REQUEST, self.identifier, 5 + len(self.type_data))
            + bytes((self.eap_type,))
            + self.type_data
        )


@dataclass(frozen=True, slots=True)
class EapResponse:
    """Code 2: a Response of method ``eap_type`` with its Type-Data (RFC 3748 4.1)."""

    identifier: int
    eap_type: int
    type_data: bytes = b""

    def __post_init__(self) -> None:
        _check_identifier(self.identifier)
        if not 1 <= self.eap_type <= 0xFF:
            raise ValueError(f"EAP type out of range: {self.eap_type}")
        if len(self.type_data) > _MAX_LENGTH - 5:
            raise ValueError("EAP Type-Data too long")

    def to_bytes(self) -> bytes:
        return (
            _HEADER.pack(EapCode.RESPONSE, self.identifier, 5 + len(self.type_data))
            + bytes((self.eap_type,))
            + self.type_data
        )


@dataclass(frozen=True, slots=True)
class EapSuccess:
    """Code 3 (RFC 3748 4.2): four bytes, no data."""

    identifier: int

    def __post_init__(self) -> None:
        _check_identifier(self.identifier)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(EapCode.SUCCESS, self.identifier, 4)


@dataclass(frozen=True, slots=True)
class EapFailure:
    """Code 4 (RFC 3748 4.2): four bytes, no data."""

    identifier: int

    def __post_init__(self) -> None:
        _check_identifier(self.identifier)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(EapCode.FAILURE, self.identifier, 4)


EapPacket = EapRequest | EapResponse | EapSuccess | EapFailure


def parse(data: bytes, *, allow_padding: bool = False) -> EapPacket:
    """Decode one EAP packet.

    The Length field must match ``len(data)`` exactly.  RFC 3748 4.1 lets octets beyond Length
    be data-link padding; pass ``allow_padding=True`` where the lower layer may pad (EAPOL on
    Ethernet).  RADIUS and IKEv2 carry the exact packet, so the default is strict.
    """
    if len(data) < 4:
        raise MalformedPacket(f"EAP header needs 4 bytes, got {len(data)}", 0)
    code, identifier, length = _HEADER.unpack_from(data)
    if length < 4:
        raise MalformedPacket(f"EAP Length {length} is below the header size", 2)
    if length > len(data):
        raise MalformedPacket(f"EAP Length {length} exceeds the {len(data)} bytes received", 2)
    if length < len(data) and not allow_padding:
        raise MalformedPacket(
            f"{len(data) - length} bytes after the EAP Length of {length}", length
        )
    if code in (EapCode.SUCCESS, EapCode.FAILURE):
        if length != 4:
            raise MalformedPacket(f"EAP Success/Failure must have Length 4, got {length}", 2)
        return EapSuccess(identifier) if code == EapCode.SUCCESS else EapFailure(identifier)
    if code in (EapCode.REQUEST, EapCode.RESPONSE):
        if length < 5:
            raise MalformedPacket("EAP Request/Response without a Type field", 4)
        eap_type = data[4]
        if eap_type == 0:
            raise MalformedPacket("EAP Type 0 is reserved", 4)
        type_data = bytes(data[5:length])
        if code == EapCode.REQUEST:
            return EapRequest(identifier, eap_type, type_data)
        return EapResponse(identifier, eap_type, type_data)
    raise MalformedPacket(f"unknown EAP Code {code}", 0)


# -- Nak (RFC 3748 5.3) -----------------------------------------------------------------------


def encode_nak(desired: Iterable[int]) -> bytes:
    """Type-Data of a legacy Nak: the desired types, or a single 0 for "no alternative"."""
    types = [t for t in desired if 4 <= t <= 253]
    return bytes(types) if types else b"\x00"


def parse_nak(type_data: bytes) -> tuple[int, ...]:
    """Desired types of a legacy Nak; an empty tuple means "no alternative" (type 0).

    Entries that name no authentication method (0 to 3) are dropped, not fatal: the Nak is
    still a refusal of the proposed method.
    """
    if not type_data:
        raise MalformedPacket("Nak without any desired type", 5)
    return tuple(t for t in type_data if t >= EapType.MD5_CHALLENGE)


@dataclass(frozen=True, slots=True)
class ExpandedType:
    """An Expanded Type (RFC 3748 5.7): vendor 0 means the IETF type numbers."""

    vendor_id: int
    vendor_type: int

    def __post_init__(self) -> None:
        if not 0 <= self.vendor_id <= 0xFFFFFF or not 0 <= self.vendor_type <= 0xFFFFFFFF:
            raise ValueError("expanded type out of range")

    def to_bytes(self) -> bytes:
        return (
            bytes((EapType.EXPANDED,))
            + struct.pack("!I", self.vendor_id)[1:]
            + struct.pack("!I", self.vendor_type)
        )


_EXPANDED_NAK = ExpandedType(0, EapType.NAK)


def parse_expanded(type_data: bytes) -> tuple[ExpandedType, bytes]:
    """Split the Type-Data of a type-254 packet into its expanded type and the method data."""
    if len(type_data) < 7:
        raise MalformedPacket("Expanded Type needs 7 bytes of vendor id and type", 5)
    vendor_id = int.from_bytes(type_data[0:3], "big")
    vendor_type = int.from_bytes(type_data[3:7], "big")
    return ExpandedType(vendor_id, vendor_type), bytes(type_data[7:])


def encode_expanded(expanded: ExpandedType, data: bytes) -> bytes:
    """Type-Data of a type-254 packet (without the leading type byte)."""
    return expanded.to_bytes()[1:] + data


def encode_expanded_nak(desired: Sequence[ExpandedType]) -> bytes:
    """Type-Data (after the 254 type byte) of an Expanded Nak (RFC 3748 5.3.2).

    An empty ``desired`` encodes the single "no alternative" entry (vendor 0, type 0).
    """
    entries = desired if desired else [ExpandedType(0, 0)]
    return encode_expanded(_EXPANDED_NAK, b"".join(e.to_bytes() for e in entries))


def parse_expanded_nak(type_data: bytes) -> tuple[ExpandedType, ...] | None:
    """Desired types of an Expanded Nak, or None when ``type_data`` is another expanded type.

    Each entry is 8 bytes (254, vendor id, vendor type); an entry of vendor 0 type 0 means
    "no alternative".
    """
    expanded, data = parse_expanded(type_data)
    if expanded != _EXPANDED_NAK:
        return None
    if not data or len(data) % 8:
        raise MalformedPacket(f"Expanded Nak data of {len(data)} bytes is not 8-byte entries", 12)
    out: list[ExpandedType] = []
    for off in range(0, len(data), 8):
        if data[off] != EapType.EXPANDED:
            raise MalformedPacket("Expanded Nak entry does not start with type 254", 12 + off)
        entry, _ = parse_expanded(data[off + 1 : off + 8])
        if entry != ExpandedType(0, 0):
            out.append(entry)
    return tuple(out)
