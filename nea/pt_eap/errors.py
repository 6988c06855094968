"""Errors of the EAP posture transports (PT-EAP, EAP-TNC).

Neither PT-EAP (RFC 7171) nor the TCG EAP-TNC framing has an error message of its own: a
transport failure ends the EAP conversation with EAP-Failure (the methods turn these
exceptions into ``Decision.FAILURE``).  ``offset`` counts octets from the start of the
Type-Data (the flags octet is offset 0) so that ``nea-decode`` can point at the bad field.
"""

from __future__ import annotations

__all__ = [
    "InvalidPacket",
    "PtEapError",
    "ReassemblyError",
    "VersionMismatch",
]


class PtEapError(Exception):
    """Root of every error raised by ``nea.pt_eap``."""

    code: str = "invalid-packet"

    def __init__(self, reason: str, *, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, offset={self.offset})"


class InvalidPacket(PtEapError):
    """Type-Data that is not a well-formed PT-EAP / EAP-TNC packet."""

    code = "invalid-packet"


class VersionMismatch(PtEapError):
    """The peer uses a version we do not support (RFC 7171 version negotiation)."""

    code = "version-not-supported"


class ReassemblyError(PtEapError):
    """EAP-TNC fragments that do not add up (length, limit, unexpected flags)."""

    code = "reassembly-error"
