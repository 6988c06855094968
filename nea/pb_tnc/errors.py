"""PB-TNC errors: every failure knows the PB-Error code (and offset) it puts on the wire.

RFC 5793 section 4.9: a PB-Error message carries an IETF error code; codes 0-3 carry an Error
Offset (octets from the start of the batch to the field in error), code 4 carries the bad
version and the range of versions the sender supports.  Each exception here can turn itself
into that PB-Error message (:meth:`PbTncError.to_message`), so a parse failure deep in a
message value becomes the right bytes on the wire without any translation table.

``PbTncUsageError`` is the h11 ``LocalProtocolError`` of this package: *we* misused the API
(sent in a state that does not allow it, gave an impossible size limit).  It is never caused
by the peer.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from nea.pb_tnc.messages import PbError

__all__ = [
    "PB_TNC_VERSION",
    "InvalidParameter",
    "LocalError",
    "PbErrorCode",
    "PbTncError",
    "PbTncUsageError",
    "UnexpectedBatchType",
    "UnsupportedMandatoryMessage",
    "VersionNotSupported",
]

PB_TNC_VERSION = 2
"""The only PB-TNC version (RFC 5793 section 4.1)."""


class PbErrorCode(enum.IntEnum):
    """IETF PB-TNC Error Codes, RFC 5793 section 4.9 (IANA "PB-TNC Error Codes")."""

    UNEXPECTED_BATCH_TYPE = 0
    INVALID_PARAMETER = 1
    LOCAL_ERROR = 2
    UNSUPPORTED_MANDATORY_MESSAGE = 3
    VERSION_NOT_SUPPORTED = 4


class PbTncError(Exception):
    """Root of every error raised by ``nea.pb_tnc``.

    ``code`` is the PB-Error code to send, ``offset`` the Error Offset (octets from the start
    of the batch to the offending field; 0 where the RFC gives no better place).
    """

    code: ClassVar[PbErrorCode] = PbErrorCode.LOCAL_ERROR

    def __init__(self, reason: str, *, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset

    def to_message(self, *, fatal: bool = True) -> PbError:
        """The PB-Error message that reports this error to the peer."""
        from nea.pb_tnc.messages import PbError

        return PbError.with_offset(self.code, self.offset, fatal=fatal)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, offset={self.offset})"


class UnexpectedBatchType(PbTncError):
    """A batch type the state machine does not allow now (RFC 5793 section 3.2)."""

    code = PbErrorCode.UNEXPECTED_BATCH_TYPE


class InvalidParameter(PbTncError):
    """A malformed header, length or value."""

    code = PbErrorCode.INVALID_PARAMETER


class LocalError(PbTncError):
    """Something went wrong on our side while handling a valid batch."""

    code = PbErrorCode.LOCAL_ERROR


class UnsupportedMandatoryMessage(PbTncError):
    """A message with NOSKIP set that this implementation does not understand."""

    code = PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE


class VersionNotSupported(PbTncError):
    """A batch header with a version other than 2; reports the range we support."""

    code = PbErrorCode.VERSION_NOT_SUPPORTED

    def __init__(
        self,
        bad_version: int,
        *,
        max_version: int = PB_TNC_VERSION,
        min_version: int = PB_TNC_VERSION,
    ) -> None:
        super().__init__(f"PB-TNC version {bad_version} not supported", offset=0)
        self.bad_version = bad_version
        self.max_version = max_version
        self.min_version = min_version

    def to_message(self, *, fatal: bool = True) -> PbError:
        from nea.pb_tnc.messages import PbError

        return PbError.version_not_supported(
            self.bad_version, self.max_version, self.min_version, fatal=fatal
        )


class PbTncUsageError(PbTncError):
    """The local caller misused the API; never caused by the peer."""

    code = PbErrorCode.LOCAL_ERROR
