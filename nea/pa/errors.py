"""PA-TNC errors: one root exception whose subclasses carry the wire error code.

Every error raised while decoding a PA-TNC message (RFC 5792) is a :class:`PaTncError`.
Each knows the PA-TNC error code that goes on the wire (RFC 5792, 4.2.8), the offset in
octets from the start of the PA-TNC message at which the problem was found, and a copy of
the offending message header, so that :meth:`PaTncError.to_attribute` can build the
PA-TNC Error attribute to send back.

Following h11's split, :class:`LocalPaTncError` means *we* misused the API (a value that
cannot be encoded); it never describes the peer and is not meant for the wire.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from nea.pa.error_attr import PaTncErrorAttribute

__all__ = [
    "MESSAGE_HEADER_LEN",
    "InvalidParameter",
    "LocalPaTncError",
    "PaErrorCode",
    "PaTncError",
    "SegmentationError",
    "UnsupportedMandatoryAttribute",
    "VersionNotSupported",
]

#: Length of the PA-TNC message header (RFC 5792, 4.1); error attributes copy it.
MESSAGE_HEADER_LEN = 8


class PaErrorCode(IntEnum):
    """PA-TNC error codes in the IETF namespace: RFC 5792, 4.2.8 (0-3) and RFC 8412
    (SWIMA, 4-8)."""

    RESERVED = 0
    INVALID_PARAMETER = 1
    VERSION_NOT_SUPPORTED = 2
    #: RFC 5792 calls it "Attribute Type Not Supported": the answer to an unsupported
    #: attribute that has the NOSKIP flag set ("unsupported mandatory attribute").
    ATTRIBUTE_TYPE_NOT_SUPPORTED = 3
    SWIMA_ERROR = 4
    SWIMA_SUBSCRIPTION_DENIED = 5
    SWIMA_RESPONSE_TOO_LARGE = 6
    SWIMA_SUBSCRIPTION_FULFILLMENT = 7
    SWIMA_SUBSCRIPTION_ID_REUSE = 8


def _header_copy(header: bytes) -> bytes:
    """The 8-octet message header copy; shorter input (a truncated message) is zero-padded."""
    return bytes(header[:MESSAGE_HEADER_LEN]).ljust(MESSAGE_HEADER_LEN, b"\x00")


class PaTncError(Exception):
    """Root of every PA-TNC error. ``code`` is the PA-TNC error code for the wire."""

    code: ClassVar[PaErrorCode] = PaErrorCode.RESERVED

    def __init__(self, message: str, *, offset: int = 0, header: bytes = b"") -> None:
        super().__init__(message)
        #: Offset in octets from the start of the PA-TNC message (RFC 5792, 4.2.8.1).
        self.offset = offset
        #: Copy of the offending PA-TNC message header (8 octets once known).
        self.header = _header_copy(header) if header else b""

    def with_header(self, header: bytes) -> PaTncError:
        """Record the offending message header (the message parser does this)."""
        self.header = _header_copy(header)
        return self

    def shifted(self, delta: int) -> PaTncError:
        """Move the offset by ``delta`` octets (an attribute parsed inside a message)."""
        self.offset += delta
        return self

    def to_attribute(self, header: bytes | None = None) -> PaTncErrorAttribute:
        """The PA-TNC Error attribute (RFC 5792, 4.2.8) that reports this error."""
        from nea.pa.error_attr import PaTncErrorAttribute, ReservedErrorInfo

        return PaTncErrorAttribute(
            error_vendor=0,
            error_code=int(self.code),
            info=ReservedErrorInfo(header=self._header_for(header)),
        )

    def _header_for(self, header: bytes | None) -> bytes:
        return _header_copy(header if header is not None else self.header)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code.name}, offset={self.offset})"


class LocalPaTncError(PaTncError, ValueError):
    """We asked for something that cannot be encoded (a value out of range, a string too
    long for its length prefix). Not a peer error; never goes on the wire."""


class InvalidParameter(PaTncError):
    """RFC 5792, 4.2.8.1: a malformed message, attribute or field at ``offset``."""

    code = PaErrorCode.INVALID_PARAMETER

    def to_attribute(self, header: bytes | None = None) -> PaTncErrorAttribute:
        from nea.pa.error_attr import InvalidParameterInfo, PaTncErrorAttribute

        return PaTncErrorAttribute(
            error_vendor=0,
            error_code=int(self.code),
            info=InvalidParameterInfo(header=self._header_for(header), offset=self.offset),
        )


class SegmentationError(InvalidParameter):
    """A peer broke the TCG IF-M segmentation rules (segment too large, attribute larger
    than the negotiated maximum, unknown base attribute ID ...). Reported on the wire as
    Invalid Parameter; the header copy is strongSwan's 0xFFFFFFFF + base attribute ID."""


class VersionNotSupported(PaTncError):
    """RFC 5792, 4.2.8.2: the message has a PA-TNC version we do not speak."""

    code = PaErrorCode.VERSION_NOT_SUPPORTED

    def __init__(
        self,
        message: str,
        *,
        offset: int = 0,
        header: bytes = b"",
        max_version: int = 1,
        min_version: int = 1,
    ) -> None:
        super().__init__(message, offset=offset, header=header)
        self.max_version = max_version
        self.min_version = min_version

    def to_attribute(self, header: bytes | None = None) -> PaTncErrorAttribute:
        from nea.pa.error_attr import PaTncErrorAttribute, VersionNotSupportedInfo

        return PaTncErrorAttribute(
            error_vendor=0,
            error_code=int(self.code),
            info=VersionNotSupportedInfo(
                header=self._header_for(header),
                max_version=self.max_version,
                min_version=self.min_version,
            ),
        )


class UnsupportedMandatoryAttribute(PaTncError):
    """RFC 5792, 4.2.8.3 ("Attribute Type Not Supported"): an attribute we do not support
    carried the NOSKIP flag, so the whole message must not be processed."""

    code = PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED

    def __init__(
        self,
        message: str,
        *,
        flags: int,
        vendor_id: int,
        attr_type: int,
        offset: int = 0,
        header: bytes = b"",
    ) -> None:
        super().__init__(message, offset=offset, header=header)
        self.flags = flags
        self.vendor_id = vendor_id
        self.attr_type = attr_type

    def to_attribute(self, header: bytes | None = None) -> PaTncErrorAttribute:
        from nea.pa.error_attr import PaTncErrorAttribute, UnsupportedAttributeInfo

        return PaTncErrorAttribute(
            error_vendor=0,
            error_code=int(self.code),
            info=UnsupportedAttributeInfo(
                header=self._header_for(header),
                flags=self.flags,
                vendor_id=self.vendor_id,
                attr_type=self.attr_type,
            ),
        )
