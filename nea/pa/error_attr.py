"""The PA-TNC Error attribute (IETF type 8): RFC 5792, 4.2.8; RFC 8412 SWIMA error codes.

Value: Reserved (8), Error Code Vendor ID (24), Error Code (32), Error Information.
The information depends on the code:

* IETF 0-3 (RFC 5792): a copy of the offending 8-octet PA-TNC message header, then
  Invalid Parameter: Offset (32); Version Not Supported: Max Version (8), Min Version (8),
  Reserved (16); Attribute Type Not Supported: Flags (8), Vendor ID (24), Type (32).
* IETF 4, 5, 8 (SWIMA error, subscription denied, subscription ID reuse): Copy of Request
  ID / Subscription ID (32), Description (UTF-8, rest of the value).
* IETF 6 (SWIMA response too large): Request ID (32), Maximum Allowed Size (32), Description.
* IETF 7 (SWIMA subscription fulfillment error): Subscription ID (32), then a nested error:
  Reserved (8), Sub Error Code Vendor ID (24), Sub Error Code (32), Sub Error Information.
  (Layout recalled from RFC 8412; strongSwan does not implement this code, and it could
  not be re-checked against the RFC text from here.)
* Any other vendor or code: kept as raw octets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from nea.pa._wire import Reader, u8, u16, u24, u32
from nea.pa.attribute import Attribute, Vendor, jsonable, register
from nea.pa.errors import MESSAGE_HEADER_LEN, InvalidParameter, LocalPaTncError, PaErrorCode

__all__ = [
    "ErrorInfo",
    "InvalidParameterInfo",
    "PaTncErrorAttribute",
    "RawErrorInfo",
    "ReservedErrorInfo",
    "SwimaErrorInfo",
    "SwimaFulfillmentErrorInfo",
    "SwimaResponseTooLargeInfo",
    "UnsupportedAttributeInfo",
    "VersionNotSupportedInfo",
]

#: A fulfillment error may nest another error; bound the depth (hostile input).
_MAX_NESTING = 4


def _check_header(header: bytes) -> bytes:
    if len(header) != MESSAGE_HEADER_LEN:
        raise LocalPaTncError("a PA-TNC message header copy is exactly 8 octets")
    return header


@dataclass(frozen=True)
class ReservedErrorInfo:
    """Code 0 (Reserved): only the copy of the message header."""

    header: bytes

    def serialize(self) -> bytes:
        return _check_header(self.header)


@dataclass(frozen=True)
class InvalidParameterInfo:
    """RFC 5792, 4.2.8.1."""

    header: bytes
    offset: int

    def serialize(self) -> bytes:
        return _check_header(self.header) + u32(self.offset, "offset")


@dataclass(frozen=True)
class VersionNotSupportedInfo:
    """RFC 5792, 4.2.8.2."""

    header: bytes
    max_version: int
    min_version: int
    reserved: int = 0

    def serialize(self) -> bytes:
        return (
            _check_header(self.header)
            + u8(self.max_version, "max version")
            + u8(self.min_version, "min version")
            + u16(self.reserved, "reserved")
        )


@dataclass(frozen=True)
class UnsupportedAttributeInfo:
    """RFC 5792, 4.2.8.3: the flags, vendor and type of the unsupported attribute."""

    header: bytes
    flags: int
    vendor_id: int
    attr_type: int

    def serialize(self) -> bytes:
        return (
            _check_header(self.header)
            + u8(self.flags, "flags")
            + u24(self.vendor_id, "vendor ID")
            + u32(self.attr_type, "attribute type")
        )


@dataclass(frozen=True)
class SwimaErrorInfo:
    """RFC 8412 (SWIMA errors): SWIMA_ERROR, SUBSCRIPTION_DENIED_ERROR and
    SUBSCRIPTION_ID_REUSE_ERROR."""

    request_id: int
    description: str

    def serialize(self) -> bytes:
        return u32(self.request_id, "request ID") + self.description.encode("utf-8")


@dataclass(frozen=True)
class SwimaResponseTooLargeInfo:
    """RFC 8412 (SWIMA errors): SWIMA_RESPONSE_TOO_LARGE_ERROR."""

    request_id: int
    max_allowed_size: int
    description: str

    def serialize(self) -> bytes:
        return (
            u32(self.request_id, "request ID")
            + u32(self.max_allowed_size, "maximum allowed size")
            + self.description.encode("utf-8")
        )


@dataclass(frozen=True)
class SwimaFulfillmentErrorInfo:
    """RFC 8412 (SWIMA errors): SWIMA_SUBSCRIPTION_FULFILLMENT_ERROR with the nested error."""

    subscription_id: int
    error_vendor: int
    error_code: int
    error_info: ErrorInfo
    reserved: int = 0

    def serialize(self) -> bytes:
        return (
            u32(self.subscription_id, "subscription ID")
            + u8(self.reserved, "reserved")
            + u24(self.error_vendor, "error vendor ID")
            + u32(self.error_code, "error code")
            + self.error_info.serialize()
        )


@dataclass(frozen=True)
class RawErrorInfo:
    """Error information of a code we do not decode (other vendors, unassigned codes)."""

    data: bytes

    def serialize(self) -> bytes:
        return self.data


ErrorInfo = (
    ReservedErrorInfo
    | InvalidParameterInfo
    | VersionNotSupportedInfo
    | UnsupportedAttributeInfo
    | SwimaErrorInfo
    | SwimaResponseTooLargeInfo
    | SwimaFulfillmentErrorInfo
    | RawErrorInfo
)

_EXPECTED_INFO: dict[int, type] = {
    PaErrorCode.RESERVED: ReservedErrorInfo,
    PaErrorCode.INVALID_PARAMETER: InvalidParameterInfo,
    PaErrorCode.VERSION_NOT_SUPPORTED: VersionNotSupportedInfo,
    PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED: UnsupportedAttributeInfo,
    PaErrorCode.SWIMA_ERROR: SwimaErrorInfo,
    PaErrorCode.SWIMA_SUBSCRIPTION_DENIED: SwimaErrorInfo,
    PaErrorCode.SWIMA_RESPONSE_TOO_LARGE: SwimaResponseTooLargeInfo,
    PaErrorCode.SWIMA_SUBSCRIPTION_FULFILLMENT: SwimaFulfillmentErrorInfo,
    PaErrorCode.SWIMA_SUBSCRIPTION_ID_REUSE: SwimaErrorInfo,
}


def _parse_info(vendor: int, code: int, r: Reader, depth: int) -> ErrorInfo:
    expected = _EXPECTED_INFO.get(code) if vendor == Vendor.IETF else None
    if expected is None:
        return RawErrorInfo(r.rest())
    if code <= PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED:
        header = r.take(MESSAGE_HEADER_LEN, "copy of the PA-TNC message header")
        info: ErrorInfo
        if code == PaErrorCode.RESERVED:
            info = ReservedErrorInfo(header)
        elif code == PaErrorCode.INVALID_PARAMETER:
            info = InvalidParameterInfo(header, r.u32("offset"))
        elif code == PaErrorCode.VERSION_NOT_SUPPORTED:
            info = VersionNotSupportedInfo(
                header, r.u8("max version"), r.u8("min version"), r.u16("reserved")
            )
        else:
            info = UnsupportedAttributeInfo(
                header, r.u8("flags"), r.u24("vendor ID"), r.u32("attribute type")
            )
        r.expect_end("PA-TNC error information")
        return info
    if code == PaErrorCode.SWIMA_RESPONSE_TOO_LARGE:
        return SwimaResponseTooLargeInfo(
            r.u32("request ID"), r.u32("maximum allowed size"), r.rest_text("description")
        )
    if code == PaErrorCode.SWIMA_SUBSCRIPTION_FULFILLMENT:
        if depth >= _MAX_NESTING:
            raise InvalidParameter("subscription fulfillment errors nested too deeply",
                                   offset=r.offset)
        sub_id = r.u32("subscription ID")
        reserved = r.u8("reserved")
        nested_vendor = r.u24("error vendor ID")
        nested_code = r.u32("error code")
        nested = _parse_info(nested_vendor, nested_code, r, depth + 1)
        return SwimaFulfillmentErrorInfo(sub_id, nested_vendor, nested_code, nested, reserved)
    return SwimaErrorInfo(r.u32("request ID"), r.rest_text("description"))


@register
@dataclass(frozen=True)
class PaTncErrorAttribute(Attribute):
    """PA-TNC Error (RFC 5792, 4.2.8)."""

    VENDOR = Vendor.IETF
    TYPE = 8
    NAME = "PA-TNC Error"

    error_vendor: int
    error_code: int
    info: ErrorInfo
    reserved: int = 0

    @property
    def code_name(self) -> str:
        if self.error_vendor == Vendor.IETF:
            try:
                return PaErrorCode(self.error_code).name
            except ValueError:
                pass
        return f"{self.error_vendor:#08x}/{self.error_code}"

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        reserved = reader.u8("reserved")
        vendor = reader.u24("error code vendor ID")
        code = reader.u32("error code")
        info = _parse_info(vendor, code, reader, 0)
        return cls(vendor, code, info, reserved, flags=flags)

    def serialize_value(self) -> bytes:
        expected = _EXPECTED_INFO.get(self.error_code) if self.error_vendor == Vendor.IETF else None
        if expected is not None and not isinstance(self.info, expected):
            raise LocalPaTncError(
                f"error code {self.code_name} needs {expected.__name__}, "
                f"not {type(self.info).__name__}"
            )
        return (
            u8(self.reserved, "reserved")
            + u24(self.error_vendor, "error code vendor ID")
            + u32(self.error_code, "error code")
            + self.info.serialize()
        )

    def summary(self) -> str:
        info = self.info
        text = self.code_name
        header = getattr(info, "header", None)
        if isinstance(header, bytes):
            text += f" about message {int.from_bytes(header[4:8], 'big'):#010x}"
        if isinstance(info, InvalidParameterInfo):
            text += f" at offset {info.offset}"
        elif isinstance(info, VersionNotSupportedInfo):
            text += f", versions {info.min_version}..{info.max_version} supported"
        elif isinstance(info, UnsupportedAttributeInfo):
            text += (f": attribute {info.vendor_id:#08x}/{info.attr_type} "
                     f"flags {info.flags:#04x}")
        elif isinstance(info, (SwimaErrorInfo, SwimaResponseTooLargeInfo)):
            text += f" for request {info.request_id}: {info.description!r}"
        elif isinstance(info, SwimaFulfillmentErrorInfo):
            text += f" for subscription {info.subscription_id}"
        elif isinstance(info, RawErrorInfo):
            text += f": {info.data.hex()}"
        return text

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error_vendor": self.error_vendor,
            "error_code": self.error_code,
            "code_name": self.code_name,
            "info": jsonable(self.info),
        }
        if self.reserved:
            out["reserved"] = self.reserved
        return out
