"""Events the RADIUS engines hand up to the gateway (one frozen type each)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from radius.attributes import Attribute
from radius.constants import AcctStatusType, Code

__all__ = [
    "AccessAccepted",
    "AccessRejected",
    "AccountingRecord",
    "Address",
    "DynamicAuthorizationAcked",
    "DynamicAuthorizationNaked",
    "DynamicAuthorizationTimedOut",
    "Event",
    "PacketDropped",
    "Verdict",
]

Address = tuple[str, int]
"""A UDP endpoint as (host, port), the shape Twisted and the socket module use."""


class Verdict(enum.Enum):
    """The NEA access recommendation (RFC 5793 section 4.6, PB-Access-Recommendation)."""

    ALLOW = "allow"
    ISOLATE = "isolate"
    NO_ACCESS = "no-access"


@dataclass(frozen=True, slots=True)
class PacketDropped:
    """A datagram was silently discarded (RFC 2865 section 3); ``reason`` is for the log."""

    source: Address
    reason: str


@dataclass(frozen=True, slots=True)
class AccessAccepted:
    client: str
    source: Address
    user_name: str | None
    calling_station_id: str | None
    verdict: Verdict | None
    vlan: str | None
    filter_id: str | None
    session_timeout: int | None
    has_keys: bool
    inner_identity: str | None = None
    """The identity authenticated inside a tunnel method (TTLS/PEAP/FAST), when the EAP
    server knows one: who the endpoint is for reports.  ``user_name`` stays the outer
    User-Name (often ``anonymous@realm``), the name the NAS knows the session by."""


@dataclass(frozen=True, slots=True)
class AccessRejected:
    client: str
    source: Address
    user_name: str | None
    calling_station_id: str | None
    reason: str
    verdict: Verdict | None = None
    inner_identity: str | None = None
    """As :attr:`AccessAccepted.inner_identity`."""


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """An Accounting-Request that verified and was answered (RFC 2866 section 5)."""

    client: str
    source: Address
    status: AcctStatusType | int | None
    session_id: str | None
    user_name: str | None
    calling_station_id: str | None
    session_time: int | None
    input_octets: int | None
    output_octets: int | None
    terminate_cause: int | None
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class DynamicAuthorizationAcked:
    """CoA-ACK or Disconnect-ACK (RFC 5176 section 2) for the request ``handle``."""

    handle: int
    code: Code
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class DynamicAuthorizationNaked:
    """CoA-NAK or Disconnect-NAK; ``error_cause`` from Error-Cause (RFC 5176 section 3.5)."""

    handle: int
    code: Code
    error_cause: int | None
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class DynamicAuthorizationTimedOut:
    """No valid answer after every retransmission."""

    handle: int


Event = (
    PacketDropped
    | AccessAccepted
    | AccessRejected
    | AccountingRecord
    | DynamicAuthorizationAcked
    | DynamicAuthorizationNaked
    | DynamicAuthorizationTimedOut
)
