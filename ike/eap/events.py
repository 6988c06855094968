"""Events the EAP server and peer report (read them from ``.events``).

They are for logs, accounting and the posture layer; the state itself is in the engines'
properties.  Events never carry secrets (no passwords, no keys).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthenticationFailed",
    "AuthenticationSucceeded",
    "EapEvent",
    "IdentityReceived",
    "MethodCompleted",
    "MethodNaked",
    "MethodStarted",
    "NotificationReceived",
    "PacketDropped",
    "Retransmitted",
]


@dataclass(frozen=True, slots=True)
class IdentityReceived:
    """Server: the peer's Identity Response data (RFC 3748 5.1)."""

    identity: bytes


@dataclass(frozen=True, slots=True)
class MethodStarted:
    eap_type: int


@dataclass(frozen=True, slots=True)
class MethodNaked:
    """A method was refused with a Nak; ``desired`` lists the alternatives proposed."""

    eap_type: int
    desired: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MethodCompleted:
    eap_type: int
    success: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """Peer: the displayable message of a Notification Request (RFC 3748 5.2)."""

    message: bytes


@dataclass(frozen=True, slots=True)
class PacketDropped:
    """A packet was silently discarded, as RFC 3748 asks; ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Retransmitted:
    """The same packet was sent again (server: timer; peer: duplicate Request)."""

    identifier: int
    attempt: int


@dataclass(frozen=True, slots=True)
class AuthenticationSucceeded:
    pass


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    reason: str


EapEvent = (
    IdentityReceived
    | MethodStarted
    | MethodNaked
    | MethodCompleted
    | NotificationReceived
    | PacketDropped
    | Retransmitted
    | AuthenticationSucceeded
    | AuthenticationFailed
)
