"""PT-TLS messages (RFC 6876 section 3.5-3.9): header, one frozen type per message, stream parser.

Header (16 octets, RFC 6876 3.5)::

    Reserved (8) | Message Type Vendor ID (24)
    Message Type (32)
    Message Length (32, header included)
    Message Identifier (32)

A :class:`Frame` is one message as it lies on the wire, value still raw; :func:`decode_value`
turns it into a typed message.  The split matters on a stream: a broken header loses the
message boundaries (fatal), a broken value does not (the session can answer with an error and
go on reading).  Unknown types decode to :class:`UnknownMessage`, kept intact.

Error offsets count from the first octet of the message (its header).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from nea.pt_tls.errors import InvalidParameter, MalformedMessage, PtTlsError

__all__ = [
    "DEFAULT_MAX_MESSAGE_LENGTH",
    "ERROR_COPY_LIMIT",
    "HEADER_SIZE",
    "PEN_IETF",
    "PT_TLS_PORT",
    "PT_TLS_VERSION",
    "Frame",
    "FrameParser",
    "Message",
    "MessageType",
    "PbTncBatchMessage",
    "PtTlsErrorMessage",
    "PtTlsExperimental",
    "SaslAuthenticationData",
    "SaslMechanismSelection",
    "SaslMechanisms",
    "SaslResult",
    "SaslResultCode",
    "UnknownMessage",
    "VersionRequest",
    "VersionResponse",
    "decode_value",
    "encode_message",
    "message_key",
    "parse_frames",
]

HEADER_SIZE = 16
PT_TLS_VERSION = 1
"""The only PT-TLS version (RFC 6876 3.7)."""
PT_TLS_PORT = 271
"""IANA "pt-tls" TCP port (RFC 6876 3.2)."""
PEN_IETF = 0
DEFAULT_MAX_MESSAGE_LENGTH = 8 * 16384
"""strongSwan's limit (8 TLS records); a default PB-TNC batch (65522) fits with room."""
ERROR_COPY_LIMIT = 1024
"""A PT-TLS Error copies at most this many octets of the offending message (RFC 6876 3.9)."""

_TYPE_RESERVED = 0xFFFFFFFF
_MECH_NAME = re.compile(rb"[A-Z0-9_-]{1,20}")
"""SASL mechanism names (RFC 4422 3.1): 1-20 upper-case letters, digits, '-' and '_'."""


class MessageType(enum.IntEnum):
    """IETF PT-TLS Message Types, RFC 6876 section 3.6 (IANA "PT-TLS Message Types")."""

    EXPERIMENTAL = 0
    VERSION_REQUEST = 1
    VERSION_RESPONSE = 2
    SASL_MECHANISMS = 3
    SASL_MECHANISM_SELECTION = 4
    SASL_AUTHENTICATION_DATA = 5
    SASL_RESULT = 6
    PB_TNC_BATCH = 7
    PT_TLS_ERROR = 8


class SaslResultCode(enum.IntEnum):
    """SASL Result codes, RFC 6876 section 3.8.4."""

    SUCCESS = 0
    FAILURE = 1
    ABORT = 2
    MECHANISM_FAILURE = 3


def _exact(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise MalformedMessage(
            f"{what} value must be {size} octets, got {len(value)}", offset=8
        )


def _mech_name(raw: bytes, offset: int) -> str:
    if not _MECH_NAME.fullmatch(raw):
        raise InvalidParameter(
            f"invalid SASL mechanism name {raw!r} (1-20 of A-Z 0-9 - _)", offset=offset
        )
    return raw.decode("ascii")


def _check_mech(name: str) -> bytes:
    raw = name.encode("ascii")
    if not _MECH_NAME.fullmatch(raw):
        raise ValueError(f"invalid SASL mechanism name {name!r}")
    return raw


class _Known:
    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType]


@dataclass(frozen=True, slots=True)
class PtTlsExperimental(_Known):
    """Experimental (RFC 6876 3.6): never used in production; we answer Type Not Supported."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.EXPERIMENTAL
    value: bytes = b""

    def encode_value(self) -> bytes:
        return self.value

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        return cls(value)


@dataclass(frozen=True, slots=True)
class VersionRequest(_Known):
    """Version Request (RFC 6876 3.7.1): Reserved, Min Vers, Max Vers, Pref Vers."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.VERSION_REQUEST
    min_version: int = PT_TLS_VERSION
    max_version: int = PT_TLS_VERSION
    preferred_version: int = PT_TLS_VERSION
    reserved: int = 0

    def __post_init__(self) -> None:
        for v in (self.min_version, self.max_version, self.preferred_version, self.reserved):
            if not 0 <= v <= 0xFF:
                raise ValueError("Version Request fields are one octet each")

    def encode_value(self) -> bytes:
        return bytes([self.reserved, self.min_version, self.max_version, self.preferred_version])

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        _exact(value, 4, "Version Request")
        reserved, vmin, vmax, vpref = value
        if vmin > vmax:
            raise InvalidParameter(f"min version {vmin} above max version {vmax}", offset=17)
        return cls(vmin, vmax, vpref, reserved)


@dataclass(frozen=True, slots=True)
class VersionResponse(_Known):
    """Version Response (RFC 6876 3.7.2): Reserved (24), Selected Version (8)."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.VERSION_RESPONSE
    version: int = PT_TLS_VERSION
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 0xFF or not 0 <= self.reserved <= 0xFFFFFF:
            raise ValueError("Version Response fields out of range")

    def encode_value(self) -> bytes:
        return ((self.reserved << 8) | self.version).to_bytes(4, "big")

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        _exact(value, 4, "Version Response")
        word = int.from_bytes(value, "big")
        return cls(word & 0xFF, word >> 8)


@dataclass(frozen=True, slots=True)
class SaslMechanisms(_Known):
    """SASL Mechanisms (RFC 6876 3.8.1): each name is Rsvd (3 bits), Mech Len (5), name.

    An empty list tells the client that authentication is over (strongSwan sends one after
    a successful SASL Result, or right away when no SASL is needed).
    """

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SASL_MECHANISMS
    mechanisms: tuple[str, ...] = ()
    reserved_bits: tuple[int, ...] = ()
    """The 3 reserved bits of each entry (empty: all zero), kept for exact re-encoding."""

    def __post_init__(self) -> None:
        if self.reserved_bits and len(self.reserved_bits) != len(self.mechanisms):
            raise ValueError("one reserved_bits entry per mechanism")
        if any(not 0 <= r <= 7 for r in self.reserved_bits):
            raise ValueError("reserved bits are 3 bits")
        for name in self.mechanisms:
            _check_mech(name)

    def encode_value(self) -> bytes:
        out = b""
        reserved = self.reserved_bits or (0,) * len(self.mechanisms)
        for name, rsvd in zip(self.mechanisms, reserved, strict=True):
            raw = _check_mech(name)
            out += bytes([(rsvd << 5) | len(raw)]) + raw
        return out

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        names: list[str] = []
        reserved: list[int] = []
        at = 0
        while at < len(value):
            n = value[at] & 0x1F
            if at + 1 + n > len(value):
                raise InvalidParameter(
                    f"mechanism length {n} exceeds the message", offset=HEADER_SIZE + at
                )
            names.append(_mech_name(value[at + 1 : at + 1 + n], HEADER_SIZE + at))
            reserved.append(value[at] >> 5)
            at += 1 + n
        return cls(tuple(names), tuple(reserved) if any(reserved) else ())


@dataclass(frozen=True, slots=True)
class SaslMechanismSelection(_Known):
    """SASL Mechanism Selection (RFC 6876 3.8.2): the chosen name and optional initial data."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SASL_MECHANISM_SELECTION
    mechanism: str
    initial: bytes = b""
    reserved_bits: int = 0

    def __post_init__(self) -> None:
        _check_mech(self.mechanism)
        if not 0 <= self.reserved_bits <= 7:
            raise ValueError("reserved bits are 3 bits")

    def encode_value(self) -> bytes:
        raw = _check_mech(self.mechanism)
        return bytes([(self.reserved_bits << 5) | len(raw)]) + raw + self.initial

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        if not value:
            raise MalformedMessage("empty SASL Mechanism Selection", offset=8)
        n = value[0] & 0x1F
        if 1 + n > len(value):
            raise InvalidParameter(f"mechanism length {n} exceeds the message", offset=16)
        name = _mech_name(value[1 : 1 + n], HEADER_SIZE)
        return cls(name, value[1 + n :], value[0] >> 5)

    def __repr__(self) -> str:  # the initial response may hold a password (PLAIN)
        return f"SaslMechanismSelection({self.mechanism!r}, <{len(self.initial)} bytes>)"


@dataclass(frozen=True, slots=True)
class SaslAuthenticationData(_Known):
    """SASL Authentication Data (RFC 6876 3.8.3): opaque mechanism data, either direction."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SASL_AUTHENTICATION_DATA
    data: bytes = b""

    def encode_value(self) -> bytes:
        return self.data

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        return cls(value)

    def __repr__(self) -> str:  # may carry credentials: never print them
        return f"SaslAuthenticationData(<{len(self.data)} bytes>)"


@dataclass(frozen=True, slots=True)
class SaslResult(_Known):
    """SASL Result (RFC 6876 3.8.4): Result Code (16) and optional Result Data.

    ``short``: strongSwan's pt-tls server sends the code as a single octet; we accept that
    form (a one-octet value) and re-encode it the same way.
    """

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SASL_RESULT
    result: int
    data: bytes = b""
    short: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.result <= (0xFF if self.short else 0xFFFF):
            raise ValueError("result code out of range")
        if self.short and self.data:
            raise ValueError("the one-octet form carries no result data")

    @property
    def code(self) -> SaslResultCode | None:
        try:
            return SaslResultCode(self.result)
        except ValueError:
            return None

    def encode_value(self) -> bytes:
        if self.short:
            return bytes([self.result])
        return self.result.to_bytes(2, "big") + self.data

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        if not value:
            raise MalformedMessage("empty SASL Result", offset=8)
        if len(value) == 1:
            result, data, short = value[0], b"", True
        else:
            result, data, short = int.from_bytes(value[:2], "big"), value[2:], False
        if result > max(SaslResultCode):
            raise InvalidParameter(f"unknown SASL result code {result}", offset=HEADER_SIZE)
        return cls(result, data, short)


@dataclass(frozen=True, slots=True)
class PbTncBatchMessage(_Known):
    """PB-TNC Batch (RFC 6876 3.6): the value is one PB-TNC batch."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.PB_TNC_BATCH
    batch: bytes

    def encode_value(self) -> bytes:
        return self.batch

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        return cls(value)


@dataclass(frozen=True, slots=True)
class PtTlsErrorMessage(_Known):
    """PT-TLS Error (RFC 6876 3.9): Reserved, Error Code Vendor ID, Error Code, and a copy of
    (up to 1024 octets of) the offending message."""

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.PT_TLS_ERROR
    error_code: int
    original: bytes = b""
    vendor_id: int = PEN_IETF
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.vendor_id <= 0xFFFFFF or not 0 <= self.reserved <= 0xFF:
            raise ValueError("vendor id / reserved out of range")
        if not 0 <= self.error_code <= 0xFFFFFFFF:
            raise ValueError("error code out of range")

    def encode_value(self) -> bytes:
        head = struct.pack(">II", (self.reserved << 24) | self.vendor_id, self.error_code)
        return head + self.original

    @classmethod
    def decode_value(cls, value: bytes) -> Self:
        if len(value) < 8:
            raise MalformedMessage(
                f"PT-TLS Error value must be at least 8 octets, got {len(value)}", offset=8
            )
        word, code = struct.unpack_from(">II", value)
        return cls(code, value[8:], word & 0xFFFFFF, word >> 24)

    @property
    def ietf_code(self) -> int | None:
        return self.error_code if self.vendor_id == PEN_IETF else None


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message of a type we do not know (vendor-specific or unassigned), kept intact."""

    vendor_id: int
    message_type: int
    value: bytes = b""

    def encode_value(self) -> bytes:
        return self.value


Message = (
    PtTlsExperimental
    | VersionRequest
    | VersionResponse
    | SaslMechanisms
    | SaslMechanismSelection
    | SaslAuthenticationData
    | SaslResult
    | PbTncBatchMessage
    | PtTlsErrorMessage
    | UnknownMessage
)

_REGISTRY: dict[int, type[_Known]] = {
    int(cls.MESSAGE_TYPE): cls
    for cls in (
        PtTlsExperimental,
        VersionRequest,
        VersionResponse,
        SaslMechanisms,
        SaslMechanismSelection,
        SaslAuthenticationData,
        SaslResult,
        PbTncBatchMessage,
        PtTlsErrorMessage,
    )
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One PT-TLS message as it lies on the wire; ``value`` not yet decoded."""

    vendor_id: int
    message_type: int
    identifier: int
    value: bytes
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.vendor_id <= 0xFFFFFF or not 0 <= self.reserved <= 0xFF:
            raise ValueError("vendor id is 24 bits, reserved 8")
        if not 0 <= self.message_type <= 0xFFFFFFFF or not 0 <= self.identifier <= 0xFFFFFFFF:
            raise ValueError("message type and identifier are 32 bits")

    @property
    def length(self) -> int:
        return HEADER_SIZE + len(self.value)

    def encode(self) -> bytes:
        header = struct.pack(
            ">IIII",
            (self.reserved << 24) | self.vendor_id,
            self.message_type,
            self.length,
            self.identifier,
        )
        return header + self.value

    def type_name(self) -> str:
        if self.vendor_id == PEN_IETF and self.message_type in _REGISTRY:
            return MessageType(self.message_type).name
        return f"0x{self.vendor_id:06x}/{self.message_type}"


def decode_value(frame: Frame) -> Message:
    """The typed message a frame carries; raises a :class:`PtTlsError` subclass."""
    cls = _REGISTRY.get(frame.message_type) if frame.vendor_id == PEN_IETF else None
    if cls is None:
        return UnknownMessage(frame.vendor_id, frame.message_type, frame.value)
    message = cls.decode_value(frame.value)  # type: ignore[attr-defined]
    assert isinstance(message, _Known)
    return message  # type: ignore[return-value]


def message_key(message: Message) -> tuple[int, int]:
    if isinstance(message, UnknownMessage):
        return (message.vendor_id, message.message_type)
    return (PEN_IETF, int(message.MESSAGE_TYPE))


def encode_message(message: Message, identifier: int) -> bytes:
    vendor, mtype = message_key(message)
    return Frame(vendor, mtype, identifier, message.encode_value()).encode()


def _check_header(data: bytes, at: int, max_length: int) -> tuple[int, int, int, int, int]:
    word, mtype, length, ident = struct.unpack_from(">IIII", data, at)
    if length < HEADER_SIZE:
        raise MalformedMessage(f"message length {length} is shorter than the header", offset=8)
    if length > max_length:
        raise InvalidParameter(
            f"message length {length} exceeds our limit of {max_length}", offset=8
        )
    if mtype == _TYPE_RESERVED:
        raise InvalidParameter("message type 0xffffffff is reserved", offset=4)
    return word >> 24, word & 0xFFFFFF, mtype, length, ident


class FrameParser:
    """Cuts a byte stream into frames; feed it any split of the stream.

    A header that cannot be (length below 16, above ``max_length``, reserved type) means the
    stream has lost its framing: :attr:`error` holds the :class:`PtTlsError` to report, the
    frames before it are still returned, and the parser accepts nothing more.  A truncated
    message just waits for more bytes (:attr:`pending`).
    """

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> None:
        if max_length < HEADER_SIZE:
            raise ValueError("max_length below the header size")
        self.max_length = max_length
        self._buffer = bytearray()
        self.error: PtTlsError | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def pending(self) -> int:
        """Octets received but not yet a whole message."""
        return len(self._buffer)

    @property
    def buffered(self) -> bytes:
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self.error is not None:
            return []
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER_SIZE:
            try:
                reserved, vendor, mtype, length, ident = _check_header(
                    bytes(self._buffer[:HEADER_SIZE]), 0, self.max_length
                )
            except PtTlsError as exc:
                self.error = exc
                break
            if len(self._buffer) < length:
                break
            value = bytes(self._buffer[HEADER_SIZE:length])
            del self._buffer[:length]
            frames.append(Frame(vendor, mtype, ident, value, reserved))
        return frames


def parse_frames(data: bytes, max_length: int = 0xFFFFFFFF) -> list[tuple[int, Frame]]:
    """Every frame of a complete buffer with its offset; a truncated tail is an error."""
    data = bytes(data)
    out: list[tuple[int, Frame]] = []
    at = 0
    while at < len(data):
        if len(data) - at < HEADER_SIZE:
            raise MalformedMessage(
                f"{len(data) - at} octets left, too few for a PT-TLS header", offset=at
            )
        try:
            reserved, vendor, mtype, length, ident = _check_header(data, at, max_length)
        except MalformedMessage as exc:
            exc.offset += at
            raise
        except InvalidParameter as exc:
            exc.offset += at
            raise
        if at + length > len(data):
            raise MalformedMessage(
                f"message length {length} but only {len(data) - at} octets left", offset=at + 8
            )
        value = data[at + HEADER_SIZE : at + length]
        out.append((at, Frame(vendor, mtype, ident, value, reserved)))
        at += length
    return out
