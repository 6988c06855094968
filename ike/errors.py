"""The IKEv2 engine's exceptions: one root, subclasses carry the Notify type for the wire.

Following h11, :class:`RemoteProtocolError` (the peer misbehaved; its subclasses know the
error Notify of RFC 7296 section 3.10.1 that answers it) is kept apart from
:class:`LocalProtocolError` (this side misused the API or is misconfigured).
"""

from __future__ import annotations

from typing import ClassVar

from ike.constants import NotifyType

__all__ = [
    "AuthenticationFailed",
    "ChildSaNotFound",
    "FailedCpRequired",
    "IkeError",
    "IntegrityCheckFailed",
    "InternalAddressFailure",
    "InvalidIkeSpi",
    "InvalidKePayload",
    "InvalidMajorVersion",
    "InvalidMessageId",
    "InvalidSpi",
    "InvalidSyntax",
    "LocalProtocolError",
    "NoAdditionalSas",
    "NoProposalChosen",
    "RemoteProtocolError",
    "TemporaryFailure",
    "TsUnacceptable",
    "UnsupportedCriticalPayload",
]


class IkeError(Exception):
    """Root of every exception raised by ``ike`` (outside the EAP sub-packages)."""


class LocalProtocolError(IkeError):
    """This side misused the engine or its configuration is invalid."""


class RemoteProtocolError(IkeError):
    """The peer sent something RFC 7296 forbids; ``notify_type`` is the answer on the wire."""

    notify_type: ClassVar[NotifyType] = NotifyType.INVALID_SYNTAX

    def __init__(self, message: str, notify_data: bytes = b"") -> None:
        super().__init__(message)
        self.notify_data = notify_data


class InvalidSyntax(RemoteProtocolError):
    notify_type = NotifyType.INVALID_SYNTAX


class IntegrityCheckFailed(InvalidSyntax):
    """The ICV (or AEAD tag) of an SK/SKF payload did not verify.

    RFC 7296, 2.21.2: such a message is dropped silently, never answered.
    """


class UnsupportedCriticalPayload(RemoteProtocolError):
    """RFC 7296, 3.2: the Notification Data is the one-octet unsupported payload type."""

    notify_type = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, payload_type: int) -> None:
        super().__init__(
            f"unsupported critical payload type {payload_type}", bytes([payload_type & 0xFF])
        )
        self.payload_type = payload_type


class InvalidMajorVersion(RemoteProtocolError):
    notify_type = NotifyType.INVALID_MAJOR_VERSION


class InvalidIkeSpi(RemoteProtocolError):
    notify_type = NotifyType.INVALID_IKE_SPI


class InvalidMessageId(RemoteProtocolError):
    notify_type = NotifyType.INVALID_MESSAGE_ID


class InvalidSpi(RemoteProtocolError):
    notify_type = NotifyType.INVALID_SPI


class NoProposalChosen(RemoteProtocolError):
    notify_type = NotifyType.NO_PROPOSAL_CHOSEN


class InvalidKePayload(RemoteProtocolError):
    """RFC 7296, 1.3/3.10.1: the data is the two-octet DH group the responder wants."""

    notify_type = NotifyType.INVALID_KE_PAYLOAD

    def __init__(self, message: str, wanted_group: int) -> None:
        super().__init__(message, wanted_group.to_bytes(2, "big"))
        self.wanted_group = wanted_group


class AuthenticationFailed(RemoteProtocolError):
    notify_type = NotifyType.AUTHENTICATION_FAILED


class NoAdditionalSas(RemoteProtocolError):
    notify_type = NotifyType.NO_ADDITIONAL_SAS


class InternalAddressFailure(RemoteProtocolError):
    notify_type = NotifyType.INTERNAL_ADDRESS_FAILURE


class FailedCpRequired(RemoteProtocolError):
    notify_type = NotifyType.FAILED_CP_REQUIRED


class TsUnacceptable(RemoteProtocolError):
    notify_type = NotifyType.TS_UNACCEPTABLE


class TemporaryFailure(RemoteProtocolError):
    notify_type = NotifyType.TEMPORARY_FAILURE


class ChildSaNotFound(RemoteProtocolError):
    notify_type = NotifyType.CHILD_SA_NOT_FOUND
