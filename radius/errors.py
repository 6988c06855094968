"""Exceptions of the RADIUS engine: one root, subclasses carry what goes on the wire.

RADIUS has no error message for a malformed packet: RFC 2865 section 3 says such packets are
silently discarded.  The one place an error code does travel is the CoA/Disconnect NAK
(RFC 5176 section 3.5, Error-Cause), so every error knows the Error-Cause a NAK would carry.
Following h11, :class:`LocalProtocolError` (our caller misused the API) is kept apart from
:class:`RemoteProtocolError` (the peer sent something wrong).
"""

from __future__ import annotations

from radius.constants import ErrorCause

__all__ = [
    "AuthenticatorError",
    "LocalProtocolError",
    "MalformedAttribute",
    "MalformedPacket",
    "RadiusError",
    "RemoteProtocolError",
]


class RadiusError(Exception):
    """Root of every exception raised by :mod:`radius`."""

    error_cause: ErrorCause = ErrorCause.INVALID_REQUEST

    def __init__(self, message: str, *, error_cause: ErrorCause | None = None) -> None:
        super().__init__(message)
        if error_cause is not None:
            self.error_cause = error_cause


class LocalProtocolError(RadiusError):
    """The caller asked for something RADIUS cannot express (e.g. an oversized attribute)."""


class RemoteProtocolError(RadiusError):
    """A received packet is invalid; RFC 2865 section 3 says: silently discard it."""


class MalformedPacket(RemoteProtocolError):
    """The packet header or its attribute area does not add up (RFC 2865 sections 3 and 5)."""


class MalformedAttribute(MalformedPacket):
    """An attribute has a length its type does not allow (RFC 2865 section 5)."""

    error_cause = ErrorCause.INVALID_ATTRIBUTE_VALUE

    def __init__(self, message: str, *, attribute_type: int) -> None:
        super().__init__(message)
        self.attribute_type = attribute_type


class AuthenticatorError(RemoteProtocolError):
    """Request/Response Authenticator or Message-Authenticator does not verify (RFC 3579 3.2)."""
