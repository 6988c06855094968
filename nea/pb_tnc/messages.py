"""PB-TNC messages (RFC 5793 section 4.2-4.11, plus the TCG and ITA vendor messages).

One frozen dataclass per message type, each with ``encode_value()`` and a ``decode_value()``
class method that consumes exactly the message value it is given; a registry maps
``(vendor id, message type)`` to the class.  Anything not in the registry decodes to
:class:`UnknownMessage`, kept byte for byte so that the engines can answer an unknown NOSKIP
message with "Unsupported Mandatory Message" and re-encode everything else unchanged.

Every message keeps the flags octet of its message header (``msg_flags``; NOSKIP is 0x80), and
every inner flags octet or reserved field, so that a decoded batch re-encodes to the identical
bytes.  The defaults for ``msg_flags`` are what strongSwan's tnccs-20 sends.

Errors raised while decoding are :class:`~nea.pb_tnc.errors.InvalidParameter` (or
:class:`~nea.pb_tnc.errors.UnsupportedMandatoryMessage` for a PB-Experimental with NOSKIP)
whose ``offset`` counts from the start of the *batch*: decoders receive the batch offset of
their value as ``base``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from nea.pb_tnc.errors import (
    InvalidParameter,
    PbErrorCode,
    UnsupportedMandatoryMessage,
)

__all__ = [
    "ERROR_FLAG_FATAL",
    "KNOWN_MESSAGE_TYPES",
    "MESSAGE_HEADER_SIZE",
    "MSG_FLAG_NOSKIP",
    "MUTUAL_FULL_DUPLEX",
    "MUTUAL_HALF_DUPLEX",
    "PA_FLAG_EXCL",
    "PEN_IETF",
    "PEN_ITA",
    "PEN_RESERVED",
    "PEN_TCG",
    "PID_ANY",
    "TYPE_RESERVED",
    "AccessRecommendation",
    "AssessmentResult",
    "IetfMessageType",
    "ItaMessageType",
    "PbAccessRecommendation",
    "PbAssessmentResult",
    "PbError",
    "PbExperimental",
    "PbLanguagePreference",
    "PbMessage",
    "PbMutualCapability",
    "PbNoskipTest",
    "PbPa",
    "PbPdpReferral",
    "PbReasonString",
    "PbRemediationParameters",
    "PdpIdentifierType",
    "RemediationType",
    "TcgMessageType",
    "UnknownMessage",
    "decode_message",
    "encode_message",
    "message_key",
]

MESSAGE_HEADER_SIZE = 12
"""Flags (8) + PB-TNC Vendor ID (24) + Message Type (32) + Message Length (32), RFC 5793 4.2."""

MSG_FLAG_NOSKIP = 0x80
"""RFC 5793 4.2: the recipient must understand the message or reject the batch."""

PEN_IETF = 0x000000
PEN_TCG = 0x005597
PEN_ITA = 0x00902A
PEN_RESERVED = 0xFFFFFF
"""RFC 5793 4.2: the vendor id 0xffffff is reserved and never valid on the wire."""
TYPE_RESERVED = 0xFFFFFFFF
"""RFC 5793 4.2 / 4.5: message type and PA subtype 0xffffffff are reserved."""

PA_FLAG_EXCL = 0x80
"""RFC 5793 4.5: deliver the PA message only to the identified collector/validator."""

PID_ANY = 0xFFFF
"""Posture Collector/Validator Identifier meaning "no particular one" (RFC 5793 4.5)."""

ERROR_FLAG_FATAL = 0x80
"""RFC 5793 4.9: the error is fatal; the sender ends the session with a CLOSE batch."""

MUTUAL_HALF_DUPLEX = 1 << 31
MUTUAL_FULL_DUPLEX = 1 << 30
"""Protocol bits of the ITA PB-Mutual-Capability message (strongSwan tnccs-20)."""

LANGUAGE_PREFIX = b"Accept-Language: "


class IetfMessageType(enum.IntEnum):
    """IETF PB-TNC message types, RFC 5793 section 4.3 (IANA "PB-TNC Message Types")."""

    EXPERIMENTAL = 0
    PA = 1
    ASSESSMENT_RESULT = 2
    ACCESS_RECOMMENDATION = 3
    REMEDIATION_PARAMETERS = 4
    ERROR = 5
    LANGUAGE_PREFERENCE = 6
    REASON_STRING = 7


class TcgMessageType(enum.IntEnum):
    """TCG (PEN 0x005597) PB-TNC message types, TCG IF-TNCCS 2.0 / strongSwan tnccs-20."""

    PDP_REFERRAL = 1


class ItaMessageType(enum.IntEnum):
    """ITA-HSR (PEN 0x00902A) PB-TNC message types used by strongSwan's tnccs-20."""

    NOSKIP_TEST = 0
    MUTUAL_CAPABILITY = 1


class AssessmentResult(enum.IntEnum):
    """PB-Assessment-Result values, RFC 5793 section 4.6 (same as PA-TNC, RFC 5792 4.2.9)."""

    COMPLIANT = 0
    NONCOMPLIANT_MINOR = 1
    NONCOMPLIANT_MAJOR = 2
    ERROR = 3
    DONT_KNOW = 4


class AccessRecommendation(enum.IntEnum):
    """PB-Access-Recommendation values, RFC 5793 section 4.7."""

    ALLOWED = 1
    DENIED = 2
    QUARANTINED = 3


class RemediationType(enum.IntEnum):
    """IETF Remediation Parameters Types, RFC 5793 section 4.8."""

    URI = 1
    STRING = 2


class PdpIdentifierType(enum.IntEnum):
    """TCG PDP Identifier Types of PB-PDP-Referral (TCG IF-TNCCS 2.0 / strongSwan)."""

    FQDN = 0
    IPV4 = 1
    IPV6 = 2


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _text(raw: bytes, encoding: str, offset: int, what: str) -> str:
    if raw.endswith(b"\x00"):
        raise InvalidParameter(f"{what} must not be NUL terminated", offset=offset)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"{what} is not valid {encoding}", offset=offset) from exc


def _exact(value: bytes, size: int, base: int, what: str) -> None:
    if len(value) != size:
        raise InvalidParameter(
            f"{what} value must be {size} bytes, got {len(value)}", offset=base - 4
        )


def _minimum(value: bytes, size: int, base: int, what: str) -> None:
    if len(value) < size:
        raise InvalidParameter(
            f"{what} value must be at least {size} bytes, got {len(value)}", offset=base - 4
        )


def _check_u8(value: int, what: str) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value} does not fit 8 bits")


def _check_u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit 16 bits")


def _check_u24(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFF:
        raise ValueError(f"{what} {value} does not fit 24 bits")


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} {value} does not fit 32 bits")


class _Known:
    """Shared behaviour of the registered message classes."""

    __slots__ = ()
    VENDOR_ID: ClassVar[int]
    MESSAGE_TYPE: ClassVar[int]
    msg_flags: int

    @property
    def noskip(self) -> bool:
        return bool(self.msg_flags & MSG_FLAG_NOSKIP)


@dataclass(frozen=True, slots=True)
class PbExperimental(_Known):
    """PB-Experimental, RFC 5793 section 4.4: any value, for testing only."""

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.EXPERIMENTAL
    value: bytes = b""
    msg_flags: int = 0

    def encode_value(self) -> bytes:
        return self.value

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        if msg_flags & MSG_FLAG_NOSKIP:
            # RFC 5793 4.4: a PB-Experimental message with NOSKIP cannot be "understood".
            raise UnsupportedMandatoryMessage(
                "PB-Experimental with NOSKIP", offset=base - MESSAGE_HEADER_SIZE
            )
        return cls(value, msg_flags)


@dataclass(frozen=True, slots=True)
class PbPa(_Known):
    """PB-PA, RFC 5793 section 4.5: one PA-TNC message, carried as opaque bytes.

    From a client ``collector_id`` is the sender and ``validator_id`` the intended recipient
    (:data:`PID_ANY` for none); from a server it is the other way round.
    """

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.PA
    pa_vendor_id: int
    pa_subtype: int
    collector_id: int
    validator_id: int
    body: bytes
    pa_flags: int = 0
    msg_flags: int = MSG_FLAG_NOSKIP

    HEADER_SIZE: ClassVar[int] = 12

    def __post_init__(self) -> None:
        _check_u24(self.pa_vendor_id, "PA message vendor id")
        _check_u32(self.pa_subtype, "PA subtype")
        _check_u16(self.collector_id, "posture collector id")
        _check_u16(self.validator_id, "posture validator id")
        _check_u8(self.pa_flags, "PB-PA flags")

    @property
    def exclusive(self) -> bool:
        return bool(self.pa_flags & PA_FLAG_EXCL)

    @property
    def message_type(self) -> tuple[int, int]:
        """The PA message type ``(vendor id, subtype)`` validators subscribe to."""
        return (self.pa_vendor_id, self.pa_subtype)

    def encode_value(self) -> bytes:
        head = struct.pack(
            ">II HH",
            (self.pa_flags << 24) | self.pa_vendor_id,
            self.pa_subtype,
            self.collector_id,
            self.validator_id,
        )
        return head + self.body

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _minimum(value, cls.HEADER_SIZE, base, "PB-PA")
        word, subtype, collector, validator = struct.unpack_from(">IIHH", value)
        vendor = word & 0xFFFFFF
        if vendor == PEN_RESERVED:
            raise InvalidParameter("PA message vendor id 0xffffff is reserved", offset=base + 1)
        if subtype == TYPE_RESERVED:
            raise InvalidParameter("PA subtype 0xffffffff is reserved", offset=base + 4)
        return cls(vendor, subtype, collector, validator, value[12:], word >> 24, msg_flags)


@dataclass(frozen=True, slots=True)
class PbAssessmentResult(_Known):
    """PB-Assessment-Result, RFC 5793 section 4.6 (RESULT batches only)."""

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.ASSESSMENT_RESULT
    result: AssessmentResult
    msg_flags: int = MSG_FLAG_NOSKIP

    def encode_value(self) -> bytes:
        return int(self.result).to_bytes(4, "big")

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _exact(value, 4, base, "PB-Assessment-Result")
        raw = _u32(value, 0)
        try:
            result = AssessmentResult(raw)
        except ValueError:
            raise InvalidParameter(f"assessment result {raw} unknown", offset=base) from None
        return cls(result, msg_flags)


@dataclass(frozen=True, slots=True)
class PbAccessRecommendation(_Known):
    """PB-Access-Recommendation, RFC 5793 section 4.7 (RESULT batches only)."""

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.ACCESS_RECOMMENDATION
    recommendation: AccessRecommendation
    reserved: int = 0
    msg_flags: int = 0

    def __post_init__(self) -> None:
        _check_u16(self.reserved, "reserved")

    def encode_value(self) -> bytes:
        return struct.pack(">HH", self.reserved, int(self.recommendation))

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _exact(value, 4, base, "PB-Access-Recommendation")
        reserved, raw = struct.unpack(">HH", value)
        try:
            rec = AccessRecommendation(raw)
        except ValueError:
            raise InvalidParameter(
                f"access recommendation {raw} unknown", offset=base + 2
            ) from None
        return cls(rec, reserved, msg_flags)


@dataclass(frozen=True, slots=True)
class PbRemediationParameters(_Known):
    """PB-Remediation-Parameters, RFC 5793 section 4.8 (RESULT batches only).

    ``parameters`` holds the raw Remediation Parameters; for the IETF types use
    :meth:`uri` / :meth:`string` to build and :attr:`as_uri` / :attr:`as_string` to read.
    """

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.REMEDIATION_PARAMETERS
    param_vendor_id: int
    param_type: int
    parameters: bytes
    reserved: int = 0
    msg_flags: int = 0

    def __post_init__(self) -> None:
        _check_u24(self.param_vendor_id, "remediation parameters vendor id")
        _check_u32(self.param_type, "remediation parameters type")
        _check_u8(self.reserved, "reserved")

    @classmethod
    def uri(cls, uri: str) -> Self:
        return cls(PEN_IETF, RemediationType.URI, uri.encode("utf-8"))

    @classmethod
    def string(cls, text: str, language: str = "") -> Self:
        return cls(PEN_IETF, RemediationType.STRING, _encode_string_with_lang(text, language))

    @property
    def as_uri(self) -> str | None:
        if (self.param_vendor_id, self.param_type) != (PEN_IETF, RemediationType.URI):
            return None
        return self.parameters.decode("utf-8", errors="replace")

    @property
    def as_string(self) -> tuple[str, str] | None:
        """``(text, language)`` of a Remediation-String, else None."""
        if (self.param_vendor_id, self.param_type) != (PEN_IETF, RemediationType.STRING):
            return None
        return _decode_string_with_lang(self.parameters, 0, "remediation string")

    def encode_value(self) -> bytes:
        head = struct.pack(">II", (self.reserved << 24) | self.param_vendor_id, self.param_type)
        return head + self.parameters

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _minimum(value, 8, base, "PB-Remediation-Parameters")
        word, ptype = struct.unpack_from(">II", value)
        vendor = word & 0xFFFFFF
        if vendor == PEN_RESERVED:
            raise InvalidParameter("remediation vendor id 0xffffff is reserved", offset=base + 1)
        params = value[8:]
        if vendor == PEN_IETF:
            if ptype == RemediationType.URI:
                _text(params, "utf-8", base + 8, "remediation URI")
            elif ptype == RemediationType.STRING:
                _decode_string_with_lang(params, base + 8, "remediation string")
        return cls(vendor, ptype, params, word >> 24, msg_flags)


def _decode_string_with_lang(raw: bytes, base: int, what: str) -> tuple[str, str]:
    """A 32-bit length, UTF-8 text, an 8-bit length and an ASCII language code, exactly."""
    if len(raw) < 4:
        raise InvalidParameter(f"{what} length missing", offset=base)
    n = _u32(raw, 0)
    if 4 + n + 1 > len(raw):
        raise InvalidParameter(f"{what} length {n} exceeds the message", offset=base)
    text = _text(raw[4 : 4 + n], "utf-8", base + 4, what)
    lang_len = raw[4 + n]
    if 5 + n + lang_len != len(raw):
        raise InvalidParameter(
            f"{what} language code length {lang_len} does not match", offset=base + 4 + n
        )
    lang = _text(raw[5 + n :], "ascii", base + 5 + n, f"{what} language code")
    return text, lang


def _encode_string_with_lang(text: str, language: str) -> bytes:
    raw = text.encode("utf-8")
    lang = language.encode("ascii")
    if len(lang) > 0xFF:
        raise ValueError("language code longer than 255 bytes")
    return len(raw).to_bytes(4, "big") + raw + bytes([len(lang)]) + lang


@dataclass(frozen=True, slots=True)
class PbError(_Known):
    """PB-Error, RFC 5793 section 4.9.

    ``parameters`` are the raw Error Parameters: for the IETF codes 0-3 a 32-bit Error
    Offset (:attr:`offset`), for Version Not Supported the bad, max and min versions and a
    reserved octet (:attr:`version_info`).
    """

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.ERROR
    error_code: int
    parameters: bytes = b"\x00\x00\x00\x00"
    error_vendor_id: int = PEN_IETF
    error_flags: int = ERROR_FLAG_FATAL
    reserved: int = 0
    msg_flags: int = MSG_FLAG_NOSKIP

    def __post_init__(self) -> None:
        _check_u16(self.error_code, "error code")
        _check_u24(self.error_vendor_id, "error code vendor id")
        _check_u8(self.error_flags, "PB-Error flags")
        _check_u16(self.reserved, "reserved")

    @classmethod
    def with_offset(cls, code: int, offset: int, *, fatal: bool = True) -> Self:
        _check_u32(offset, "error offset")
        return cls(
            code,
            offset.to_bytes(4, "big"),
            error_flags=ERROR_FLAG_FATAL if fatal else 0,
        )

    @classmethod
    def version_not_supported(
        cls, bad_version: int, max_version: int, min_version: int, *, fatal: bool = True
    ) -> Self:
        return cls(
            PbErrorCode.VERSION_NOT_SUPPORTED,
            bytes([bad_version & 0xFF, max_version & 0xFF, min_version & 0xFF, 0]),
            error_flags=ERROR_FLAG_FATAL if fatal else 0,
        )

    @property
    def fatal(self) -> bool:
        return bool(self.error_flags & ERROR_FLAG_FATAL)

    @property
    def ietf_code(self) -> PbErrorCode | None:
        if self.error_vendor_id != PEN_IETF:
            return None
        try:
            return PbErrorCode(self.error_code)
        except ValueError:
            return None

    @property
    def offset(self) -> int | None:
        """Error Offset of IETF codes 0-3, else None."""
        code = self.ietf_code
        if code is None or code == PbErrorCode.VERSION_NOT_SUPPORTED:
            return None
        return _u32(self.parameters, 0)

    @property
    def version_info(self) -> tuple[int, int, int] | None:
        """``(bad, max, min)`` versions of Version Not Supported, else None."""
        if self.ietf_code != PbErrorCode.VERSION_NOT_SUPPORTED:
            return None
        return (self.parameters[0], self.parameters[1], self.parameters[2])

    def encode_value(self) -> bytes:
        head = struct.pack(
            ">IHH",
            (self.error_flags << 24) | self.error_vendor_id,
            self.error_code,
            self.reserved,
        )
        return head + self.parameters

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _minimum(value, 8, base, "PB-Error")
        word, code, reserved = struct.unpack_from(">IHH", value)
        vendor = word & 0xFFFFFF
        params = value[8:]
        if vendor == PEN_RESERVED:
            raise InvalidParameter("error vendor id 0xffffff is reserved", offset=base + 1)
        if vendor == PEN_IETF and code <= PbErrorCode.VERSION_NOT_SUPPORTED and len(params) != 4:
            raise InvalidParameter(
                f"IETF PB-Error parameters must be 4 bytes, got {len(params)}", offset=base + 8
            )
        return cls(code, params, vendor, word >> 24, reserved, msg_flags)


@dataclass(frozen=True, slots=True)
class PbLanguagePreference(_Known):
    """PB-Language-Preference, RFC 5793 section 4.10: an ``Accept-Language:`` header.

    ``languages`` is the header value without the ``Accept-Language: `` prefix (``"en"``).
    """

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.LANGUAGE_PREFERENCE
    languages: str
    msg_flags: int = 0

    def encode_value(self) -> bytes:
        return LANGUAGE_PREFIX + self.languages.encode("ascii")

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        if not value.startswith(LANGUAGE_PREFIX):
            raise InvalidParameter("language preference lacks 'Accept-Language: '", offset=base)
        text = _text(value[len(LANGUAGE_PREFIX) :], "ascii", base, "language preference")
        return cls(text, msg_flags)

    def ranked(self) -> list[str]:
        """Language ranges by preference (RFC 2616 14.4 q-values), lower-cased, q=0 dropped."""
        ranked: list[tuple[float, int, str]] = []
        for index, item in enumerate(self.languages.split(",")):
            parts = [p.strip() for p in item.split(";")]
            tag = parts[0].lower()
            if not tag:
                continue
            q = 1.0
            for param in parts[1:]:
                if param.lower().startswith("q="):
                    try:
                        q = float(param[2:])
                    except ValueError:
                        q = 0.0
            if q > 0:
                ranked.append((-q, index, tag))
        return [tag for _, _, tag in sorted(ranked)]


@dataclass(frozen=True, slots=True)
class PbReasonString(_Known):
    """PB-Reason-String, RFC 5793 section 4.11: UTF-8 reason plus its language code."""

    VENDOR_ID: ClassVar[int] = PEN_IETF
    MESSAGE_TYPE: ClassVar[int] = IetfMessageType.REASON_STRING
    reason: str
    language: str = ""
    msg_flags: int = 0

    def encode_value(self) -> bytes:
        return _encode_string_with_lang(self.reason, self.language)

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _minimum(value, 5, base, "PB-Reason-String")
        reason, lang = _decode_string_with_lang(value, base, "reason string")
        return cls(reason, lang, msg_flags)


@dataclass(frozen=True, slots=True)
class PbNoskipTest(_Known):
    """ITA PB-Noskip-Test: an empty message with NOSKIP that no one implements (strongSwan's
    ``tests.pb_tnc_noskip`` option sends it to provoke "Unsupported Mandatory Message")."""

    VENDOR_ID: ClassVar[int] = PEN_ITA
    MESSAGE_TYPE: ClassVar[int] = ItaMessageType.NOSKIP_TEST
    msg_flags: int = MSG_FLAG_NOSKIP

    def encode_value(self) -> bytes:
        return b""

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _exact(value, 0, base, "PB-Noskip-Test")
        return cls(msg_flags)


@dataclass(frozen=True, slots=True)
class PbMutualCapability(_Known):
    """ITA PB-Mutual-Capability: a 32-bit set of supported mutual PB-TNC protocols."""

    VENDOR_ID: ClassVar[int] = PEN_ITA
    MESSAGE_TYPE: ClassVar[int] = ItaMessageType.MUTUAL_CAPABILITY
    protocols: int
    msg_flags: int = 0

    def __post_init__(self) -> None:
        _check_u32(self.protocols, "protocols")

    @property
    def half_duplex(self) -> bool:
        return bool(self.protocols & MUTUAL_HALF_DUPLEX)

    @property
    def full_duplex(self) -> bool:
        return bool(self.protocols & MUTUAL_FULL_DUPLEX)

    def encode_value(self) -> bytes:
        return self.protocols.to_bytes(4, "big")

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _exact(value, 4, base, "PB-Mutual-Capability")
        return cls(_u32(value, 0), msg_flags)


@dataclass(frozen=True, slots=True)
class PbPdpReferral(_Known):
    """TCG PB-PDP-Referral: where the client finds the Policy Decision Point.

    Value: reserved (8), PDP Identifier vendor id (24), PDP Identifier type (32), PDP
    Identifier.  For the TCG FQDN type the identifier is reserved (8), protocol (8; 0 =
    PT-TLS), port (16) and the FQDN; see :attr:`fqdn`.
    """

    VENDOR_ID: ClassVar[int] = PEN_TCG
    MESSAGE_TYPE: ClassVar[int] = TcgMessageType.PDP_REFERRAL
    identifier_vendor_id: int
    identifier_type: int
    identifier: bytes
    reserved: int = 0
    msg_flags: int = 0

    def __post_init__(self) -> None:
        _check_u24(self.identifier_vendor_id, "PDP identifier vendor id")
        _check_u32(self.identifier_type, "PDP identifier type")
        _check_u8(self.reserved, "reserved")

    @classmethod
    def from_fqdn(cls, fqdn: str, port: int, protocol: int = 0) -> Self:
        _check_u16(port, "port")
        _check_u8(protocol, "protocol")
        ident = struct.pack(">BBH", 0, protocol, port) + fqdn.encode("ascii")
        return cls(PEN_TCG, PdpIdentifierType.FQDN, ident)

    @property
    def fqdn(self) -> tuple[str, int, int] | None:
        """``(fqdn, port, protocol)`` of a TCG FQDN identifier, else None."""
        if (self.identifier_vendor_id, self.identifier_type) != (PEN_TCG, PdpIdentifierType.FQDN):
            return None
        _, protocol, port = struct.unpack_from(">BBH", self.identifier)
        return self.identifier[4:].decode("ascii", errors="replace"), port, protocol

    def encode_value(self) -> bytes:
        head = struct.pack(
            ">II", (self.reserved << 24) | self.identifier_vendor_id, self.identifier_type
        )
        return head + self.identifier

    @classmethod
    def decode_value(cls, value: bytes, msg_flags: int, base: int) -> Self:
        _minimum(value, 8, base, "PB-PDP-Referral")
        word, itype = struct.unpack_from(">II", value)
        ident = value[8:]
        vendor = word & 0xFFFFFF
        if (vendor, itype) == (PEN_TCG, PdpIdentifierType.FQDN) and len(ident) < 4:
            raise InvalidParameter("PDP FQDN identifier shorter than 4 bytes", offset=base + 8)
        return cls(vendor, itype, ident, word >> 24, msg_flags)


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message of a type this implementation does not know, kept intact."""

    vendor_id: int
    message_type: int
    value: bytes
    msg_flags: int = 0

    def __post_init__(self) -> None:
        _check_u24(self.vendor_id, "vendor id")
        _check_u32(self.message_type, "message type")
        _check_u8(self.msg_flags, "message flags")

    @property
    def noskip(self) -> bool:
        return bool(self.msg_flags & MSG_FLAG_NOSKIP)

    def encode_value(self) -> bytes:
        return self.value


PbMessage = (
    PbExperimental
    | PbPa
    | PbAssessmentResult
    | PbAccessRecommendation
    | PbRemediationParameters
    | PbError
    | PbLanguagePreference
    | PbReasonString
    | PbNoskipTest
    | PbMutualCapability
    | PbPdpReferral
    | UnknownMessage
)

_KnownClass = (
    type[PbExperimental]
    | type[PbPa]
    | type[PbAssessmentResult]
    | type[PbAccessRecommendation]
    | type[PbRemediationParameters]
    | type[PbError]
    | type[PbLanguagePreference]
    | type[PbReasonString]
    | type[PbNoskipTest]
    | type[PbMutualCapability]
    | type[PbPdpReferral]
)

KNOWN_MESSAGE_TYPES: dict[tuple[int, int], _KnownClass] = {
    (cls.VENDOR_ID, int(cls.MESSAGE_TYPE)): cls
    for cls in (
        PbExperimental,
        PbPa,
        PbAssessmentResult,
        PbAccessRecommendation,
        PbRemediationParameters,
        PbError,
        PbLanguagePreference,
        PbReasonString,
        PbNoskipTest,
        PbMutualCapability,
        PbPdpReferral,
    )
}
"""Registry ``(vendor id, message type) -> class``."""


def message_key(message: PbMessage) -> tuple[int, int]:
    """``(vendor id, message type)`` of any message, known or not."""
    if isinstance(message, UnknownMessage):
        return (message.vendor_id, message.message_type)
    return (message.VENDOR_ID, int(message.MESSAGE_TYPE))


def encode_message(message: PbMessage) -> bytes:
    """Message header (RFC 5793 4.2) plus value."""
    vendor, mtype = message_key(message)
    value = message.encode_value()
    length = MESSAGE_HEADER_SIZE + len(value)
    if length > 0xFFFFFFFF:
        raise ValueError("message too long")
    header = struct.pack(">III", (message.msg_flags << 24) | vendor, mtype, length)
    return header + value


def decode_message(data: bytes, offset: int) -> tuple[PbMessage, int]:
    """Decode the message starting at ``data[offset]`` (``data`` is the whole batch).

    Returns the message and its total length.  Error offsets count from the batch start.
    """
    remaining = len(data) - offset
    if remaining < MESSAGE_HEADER_SIZE:
        raise InvalidParameter(
            f"{remaining} bytes too few for a PB-TNC message header", offset=offset
        )
    word, mtype, length = struct.unpack_from(">III", data, offset)
    flags, vendor = word >> 24, word & 0xFFFFFF
    if length < MESSAGE_HEADER_SIZE or length > remaining:
        raise InvalidParameter(f"message length {length} invalid", offset=offset + 8)
    if vendor == PEN_RESERVED:
        raise InvalidParameter("PB-TNC vendor id 0xffffff is reserved", offset=offset + 1)
    if mtype == TYPE_RESERVED:
        raise InvalidParameter("PB-TNC message type 0xffffffff is reserved", offset=offset + 4)
    value = bytes(data[offset + MESSAGE_HEADER_SIZE : offset + length])
    cls = KNOWN_MESSAGE_TYPES.get((vendor, mtype))
    if cls is None:
        return UnknownMessage(vendor, mtype, value, flags), length
    return cls.decode_value(value, flags, offset + MESSAGE_HEADER_SIZE), length
