"""What the validators tell the outside world: result records and the :class:`EvidenceSink`.

The validators (``nea.imv``) and the policy engine (``nea.policy``) do no I/O. Everything a
gateway may want to keep -- who connected, what the endpoint reported, how each policy came
out, what remediation went back, what was decided -- is handed to an :class:`EvidenceSink`
as frozen records. The evidence database (``gateway.db``) implements the sink with SQL;
:class:`MemoryEvidenceSink` keeps the records in lists for tests, and
:class:`NullEvidenceSink` drops them.

The sink also answers one question for the validators: :meth:`EvidenceSink.last_compliant`,
the time a device last passed a policy (for an enforcement's ``max_age``).

Every timestamp is an aware UTC :class:`datetime.datetime` taken from the wall clock the
gateway passes in; ``connection_id`` is the PB-TNC connection id the TNCS was built with.
These types are a stable interface: fields may be added at the end with defaults, never
removed or renamed.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nea.pb_tnc.imv import ActionRecommendation
from nea.pb_tnc.messages import AccessRecommendation, AssessmentResult

__all__ = [
    "DeviceFacts",
    "EvidenceSink",
    "MemoryEvidenceSink",
    "NullEvidenceSink",
    "PolicyOutcome",
    "PolicyResult",
    "RemediationRecord",
    "SessionDecision",
    "SessionStart",
]


class PolicyOutcome(enum.Enum):
    """How one enforced policy came out for one connection."""

    PASSED = "passed"
    """Measured and compliant."""
    FAILED = "failed"
    """Measured and not compliant: the enforcement's ``rec_fail`` applies."""
    NO_RESULT = "no_result"
    """Nothing to measure (the endpoint did not send the attribute, or said "unknown"):
    the enforcement's ``rec_noresult`` applies."""
    SKIPPED = "skipped"
    """Not measured: the device passed this policy within the enforcement's ``max_age``
    (counts as passed)."""


@dataclass(frozen=True, slots=True)
class SessionStart:
    """A handshake began on a connection (the first one, or a retry)."""

    connection_id: int
    identity: str | None
    """The authenticated user/machine identity the gateway bound to the connection."""
    at: _dt.datetime
    retry: bool = False
    """True for a handshake retry (SRETRY/CRETRY) on a live connection."""
    address: str | None = None
    """The endpoint's address when the transport knows it at the start (outer IKE peer
    address, RADIUS Calling-Station-Id, PT-TLS peer); a gateway may also bind it later."""


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the endpoint reported about itself; ``None`` means "not reported (yet)".

    The validators send one record per validator per batch in which they learnt something
    (so a sink merges records of one connection field by field, later non-None values
    winning). ``product`` is the Product Information name ("Debian"), ``version`` the String
    Version product version ("12 x86_64"); ``os_label`` joins them the way policy files
    name an OS ("Debian 12 x86_64").
    """

    connection_id: int
    at: _dt.datetime
    device_id: str | None = None
    product: str | None = None
    product_vendor_id: int | None = None
    product_id: int | None = None
    version: str | None = None
    numeric_version: tuple[int, int, int] | None = None
    """(major, minor, build) of the Numeric Version attribute."""
    operational_status: int | None = None
    """RFC 5792 4.2.5 status code (3 = operational)."""
    operational_result: int | None = None
    last_use: str | None = None
    forwarding: int | None = None
    """RFC 5792 4.2.11: 0 disabled, 1 enabled, 2 unknown."""
    default_password: bool | None = None
    packages: tuple[tuple[str, str], ...] | None = None
    """(name, version) of every installed package, when they were asked for."""
    ports: tuple[tuple[int, int, bool], ...] | None = None
    """Port Filter entries as (IP protocol, port, blocked)."""
    software: tuple[str, ...] | None = None
    """SWIMA software identifiers of the device's current inventory."""

    @property
    def os_label(self) -> str | None:
        if self.product is None:
            return None
        return f"{self.product} {self.version}".strip() if self.version else self.product


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The outcome of one enforcement (policy x group) on one connection."""

    connection_id: int
    device_id: str | None
    identity: str | None
    policy: str
    """The policy's name in the policy file."""
    policy_type: str
    """``PCKGS``, ``FWDEN``, ``TCPBL``, ... (see ``nea.policy.PolicyType``)."""
    group: str
    """The device group through which the enforcement applied."""
    outcome: PolicyOutcome
    recommendation: ActionRecommendation
    """What this policy contributes: ALLOW when passed/skipped, else rec_fail / rec_noresult."""
    evaluation: AssessmentResult
    at: _dt.datetime
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """The measured values the decision rests on (JSON-serialisable: str, int, bool, None,
    lists and dicts of those), e.g. ``{"forwarding": 1}`` or
    ``{"blacklisted": [["openssl", "3.0.9-1"]]}``."""
    reason: str = ""
    """A one-line human explanation (English)."""
    remediation: tuple[str, ...] = ()
    """The remediation instructions sent for this policy (URIs and texts)."""
    validator: str = ""
    """Name of the validator that evaluated it (``os``, ``ports``, ``swima``, ``test``)."""


@dataclass(frozen=True, slots=True)
class RemediationRecord:
    """Remediation instructions a validator sent to the endpoint."""

    connection_id: int
    device_id: str | None
    identity: str | None
    validator: str
    policy: str | None
    uri: str | None
    text: str | None
    language: str
    at: _dt.datetime


@dataclass(frozen=True, slots=True)
class SessionDecision:
    """The combined verdict of one handshake (what went into the PB-TNC RESULT batch)."""

    connection_id: int
    device_id: str | None
    identity: str | None
    access: AccessRecommendation
    recommendation: ActionRecommendation
    evaluation: AssessmentResult
    at: _dt.datetime
    per_validator: Mapping[str, tuple[ActionRecommendation, AssessmentResult]] = field(
        default_factory=dict
    )
    """Each validator's own (recommendation, evaluation), by validator name."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Reason strings by validator name (English)."""


@runtime_checkable
class EvidenceSink(Protocol):
    """Receives the validators' records; answers ``last_compliant`` for ``max_age``.

    The methods are called synchronously from the validators, in protocol order; an
    implementation that persists must not block (queue the record and return).
    """

    def session_started(self, start: SessionStart) -> None: ...

    def facts_measured(self, facts: DeviceFacts) -> None: ...

    def policy_result(self, result: PolicyResult) -> None: ...

    def remediation_sent(self, record: RemediationRecord) -> None: ...

    def session_decided(self, decision: SessionDecision) -> None: ...

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None: ...

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        """When ``device_id`` last passed ``policy`` (by name), or None if never/unknown."""
        ...


class NullEvidenceSink:
    """Drops every record; no device was ever compliant (``max_age`` never skips)."""

    def session_started(self, start: SessionStart) -> None:
        pass

    def facts_measured(self, facts: DeviceFacts) -> None:
        pass

    def policy_result(self, result: PolicyResult) -> None:
        pass

    def remediation_sent(self, record: RemediationRecord) -> None:
        pass

    def session_decided(self, decision: SessionDecision) -> None:
        pass

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None:
        pass

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        return None


class MemoryEvidenceSink:
    """Keeps every record in lists (tests, demos); ``last_compliant`` from its own results."""

    def __init__(self) -> None:
        self.starts: list[SessionStart] = []
        self.facts: list[DeviceFacts] = []
        self.results: list[PolicyResult] = []
        self.remediations: list[RemediationRecord] = []
        self.decisions: list[SessionDecision] = []
        self.ended: list[tuple[int, _dt.datetime]] = []

    def session_started(self, start: SessionStart) -> None:
        self.starts.append(start)

    def facts_measured(self, facts: DeviceFacts) -> None:
        self.facts.append(facts)

    def policy_result(self, result: PolicyResult) -> None:
        self.results.append(result)

    def remediation_sent(self, record: RemediationRecord) -> None:
        self.remediations.append(record)

    def session_decided(self, decision: SessionDecision) -> None:
        self.decisions.append(decision)

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None:
        self.ended.append((connection_id, at))

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        times = [
            r.at
            for r in self.results
            if r.device_id == device_id and r.policy == policy
            and r.outcome is PolicyOutcome.PASSED
        ]
        return max(times) if times else None
