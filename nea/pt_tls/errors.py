"""PT-TLS errors: each knows the PT-TLS error code it puts on the wire (RFC 6876 3.9).

``offset`` is where in the offending message (header included) the problem was found; PT-TLS
Error messages carry no offset, only a copy of the message, but ``nea-decode`` and the logs
point at the field.  ``fatal``: after sending the error the sender ends the session; only
"Type Not Supported" lets the conversation go on (the message is ignored).

:class:`PtTlsUsageError` is the h11 ``LocalProtocolError`` of this package: we misused the
API (sent in the wrong phase, a value that cannot be encoded); never caused by the peer.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "InvalidMessage",
    "InvalidParameter",
    "MalformedMessage",
    "PtTlsError",
    "PtTlsErrorCode",
    "PtTlsUsageError",
    "SaslMechanismError",
    "TypeNotSupported",
    "VersionNotSupported",
]


class PtTlsErrorCode(enum.IntEnum):
    """IETF PT-TLS Error Codes, RFC 6876 section 3.9.1 (IANA "PT-TLS Error Codes")."""

    RESERVED = 0
    MALFORMED_MESSAGE = 1
    VERSION_NOT_SUPPORTED = 2
    TYPE_NOT_SUPPORTED = 3
    INVALID_MESSAGE = 4
    SASL_MECHANISM_ERROR = 5
    INVALID_PARAMETER = 6


class PtTlsError(Exception):
    """Root of every error raised by ``nea.pt_tls``."""

    code: ClassVar[PtTlsErrorCode] = PtTlsErrorCode.INVALID_PARAMETER
    fatal: ClassVar[bool] = True

    def __init__(self, reason: str, *, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, offset={self.offset})"


class MalformedMessage(PtTlsError):
    """The basic sanity test failed: a header that cannot be, a value of the wrong size."""

    code = PtTlsErrorCode.MALFORMED_MESSAGE


class VersionNotSupported(PtTlsError):
    """No PT-TLS version in common."""

    code = PtTlsErrorCode.VERSION_NOT_SUPPORTED


class TypeNotSupported(PtTlsError):
    """A message type (vendor or IETF, Experimental included) we do not implement; the
    message is ignored and the session goes on."""

    code = PtTlsErrorCode.TYPE_NOT_SUPPORTED
    fatal = False


class InvalidMessage(PtTlsError):
    """A known message at a time the protocol does not allow it (wrong phase)."""

    code = PtTlsErrorCode.INVALID_MESSAGE


class SaslMechanismError(PtTlsError):
    """Client authentication cannot proceed (no common mechanism, one not offered)."""

    code = PtTlsErrorCode.SASL_MECHANISM_ERROR


class InvalidParameter(PtTlsError):
    """A field with a value out of range (a length, a version range, a mechanism name)."""

    code = PtTlsErrorCode.INVALID_PARAMETER


class PtTlsUsageError(PtTlsError):
    """The local caller misused the API."""

    code = PtTlsErrorCode.RESERVED
