"""The common machinery of the policy-driven validators (IF-IMV semantics).

A :class:`PolicyValidator` subscribes to PA message types, decodes each received PA-TNC
message with :func:`nea.pa.process_message` (answering a PA-TNC Error to the sending
collector when the message warrants one and then ignoring it), stores what it measured, and
at each batch end evaluates the enforcements of its policy types that apply to the
connection (see :class:`nea.policy.PolicyEngine`):

* an enforcement whose device passed the policy within ``max_age`` is skipped;
* a policy whose measurement is missing makes the validator ask for it once per handshake
  (an Attribute Request, or a SWIMA request) and wait;
* once every enforcement has a result the validator decides (IF-IMV ProvideRecommendation):
  it sends the collector a PA-TNC message with Assessment Result and, for failed policies,
  Remediation Instructions, and reports a :class:`~nea.imv.evidence.PolicyResult` per policy;
* when solicited (the client has nothing more to send) a missing measurement is "no result"
  and ``rec_noresult`` applies.

A validator that has no enforcement to evaluate for the connection waits until solicited and
then recommends allow with evaluation "don't know" (as strongSwan's validators do without a
policy); the gateway's policy decides what must be measured.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nea.imv.engine import AppliedEnforcement, PolicyEngine
from nea.imv.evidence import PolicyOutcome, PolicyResult, RemediationRecord
from nea.pa import (
    AssessmentResult as PaAssessmentResult,
)
from nea.pa import (
    Attribute,
    AttributeEnvelope,
    NeedNextSegment,
    PaMessage,
    RemediationInstructions,
    SegmentationError,
    SegmentReassembler,
    UnknownAttribute,
    UnsupportedMandatoryAttribute,
    error_message,
    process_message,
)
from nea.pb_tnc.imv import (
    ActionRecommendation,
    ConnectionState,
    OutboundPa,
    ValidatorRecommendation,
    combine_recommendations,
)
from nea.pb_tnc.messages import (
    PID_ANY,
    AssessmentResult,
    PbPa,
    PbRemediationParameters,
)
from nea.policy.config import Policy, PolicyType

__all__ = [
    "MAX_ATTRIBUTE_SIZE",
    "MAX_SEGMENT_SIZE",
    "Measured",
    "Need",
    "PolicyValidator",
    "ValidatorConnection",
    "evaluation_for",
]


MAX_ATTRIBUTE_SIZE = 4 * 1024 * 1024
"""Largest attribute a validator reassembles from TCG segments (4 MiB)."""
MAX_SEGMENT_SIZE = 32000
"""Segment size validators ask for (fits a PB-TNC message inside PT-EAP, 32722 octets)."""


@dataclass(frozen=True)
class Measured:
    """A policy's measurement: ``passed`` True/False, or None for "no result"."""

    passed: bool | None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Need:
    """The measurement is missing: ``request`` asks the collector for it (sent once per
    handshake per ``key``); ``reason`` explains a "no result" if it never comes."""

    key: str
    request: Attribute | None
    reason: str
    companions: tuple[Attribute, ...] = ()
    """Attributes sent once before ``request`` in the same message (e.g. the TCG Max
    Attribute Size Request that allows the collector to segment its answer)."""


@dataclass
class ValidatorConnection:
    """What a validator keeps per connection and handshake."""

    collector_id: int = PID_ANY
    requested: set[str] = field(default_factory=set)
    decision: ValidatorRecommendation | None = None
    rounds: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    reassembler: SegmentReassembler | None = None
    """The validator's measurements of this handshake, by its own keys."""


def _join_reasons(per_policy: list[dict[str, str]]) -> dict[str, str]:
    """One reason string per language offered by any policy; a policy without that
    language contributes its English (else its first) text."""
    langs: list[str] = []
    for texts in per_policy:
        langs += [lang for lang in texts if lang not in langs]
    return {
        lang: "; ".join(t.get(lang) or t.get("en") or next(iter(t.values())) for t in per_policy)
        for lang in langs
    }


def evaluation_for(rec: ActionRecommendation) -> AssessmentResult:
    """The evaluation of a failed policy: major when it blocks, minor otherwise."""
    if rec is ActionRecommendation.NO_ACCESS:
        return AssessmentResult.NONCOMPLIANT_MAJOR
    return AssessmentResult.NONCOMPLIANT_MINOR


class PolicyValidator:
    """Base class; subclasses set NAME, TYPES, SUBSCRIPTIONS and implement ``take`` and
    ``measure``."""

    NAME: ClassVar[str] = "validator"
    TYPES: ClassVar[frozenset[PolicyType]] = frozenset()
    SUBSCRIPTIONS: ClassVar[tuple[tuple[int, int], ...]] = ()
    DEFAULT_ID: ClassVar[int] = 0

    def __init__(self, engine: PolicyEngine, *, validator_id: int | None = None) -> None:
        self.engine = engine
        self._id = self.DEFAULT_ID if validator_id is None else validator_id
        self._conns: dict[int, ValidatorConnection] = {}

    # ---- PostureValidator protocol

    @property
    def validator_id(self) -> int:
        return self._id

    @property
    def subscriptions(self) -> Collection[tuple[int, int]]:
        return self.SUBSCRIPTIONS

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None:
        if state is ConnectionState.CREATE:
            self.engine.open_connection(conn_id)
            self._conns[conn_id] = ValidatorConnection()
        elif state is ConnectionState.HANDSHAKE:
            self._conns[conn_id] = ValidatorConnection()
        elif state is ConnectionState.DELETE:
            self._conns.pop(conn_id, None)
        self.engine.connection_changed(conn_id, state)

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]:
        st = self.connection(conn_id)
        st.collector_id = message.collector_id
        result = process_message(message.body)
        if not result.ok:
            reply = error_message(result.errors)
            return [self._to_collector(st, reply, message.pa_vendor_id, message.pa_subtype)]
        msg = result.message
        assert msg is not None  # ok implies a decoded message
        replies: list[Attribute] = []
        for attr in msg.attributes:
            if isinstance(attr, AttributeEnvelope):
                replies += self._reassemble(conn_id, st, attr)
            else:
                self.take(conn_id, st, attr)
        if not replies:
            return []
        reply_msg = PaMessage.create(replies)
        return [self._to_collector(st, reply_msg, message.pa_vendor_id, message.pa_subtype)]

    def _reassemble(
        self, conn_id: int, st: ValidatorConnection, envelope: AttributeEnvelope
    ) -> list[Attribute]:
        """TCG IF-M segmentation: collect an attribute sent in segments (as collectors do
        for a large Installed Packages after our Max Attribute Size Request)."""
        if st.reassembler is None:
            st.reassembler = SegmentReassembler(max_attribute_size=MAX_ATTRIBUTE_SIZE,
                                                max_pending=4)
        try:
            event = st.reassembler.receive(envelope)
        except SegmentationError as exc:
            return [exc.to_attribute()]
        if isinstance(event, NeedNextSegment):
            return [event.request]
        attr = event.attribute
        if isinstance(attr, UnknownAttribute) and attr.noskip:
            err = UnsupportedMandatoryAttribute(
                f"unsupported attribute {attr.name} with NOSKIP (segmented)",
                flags=attr.flags, vendor_id=attr.vendor_id, attr_type=attr.attr_type,
                offset=0, header=b"\xff\xff\xff\xff" + envelope.base_attr_id.to_bytes(4, "big"),
            )
            return [err.to_attribute()]
        self.take(conn_id, st, attr)
        return []

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]:
        st = self.connection(conn_id)
        st.rounds += 1
        self.engine.flush_facts(conn_id)
        if st.decision is not None:
            return []
        return self.evaluate(conn_id, st, final=False)

    def provided_recommendation(self, conn_id: int) -> ValidatorRecommendation | None:
        return self.connection(conn_id).decision

    def solicit_recommendation(self, conn_id: int) -> ValidatorRecommendation:
        st = self.connection(conn_id)
        self.engine.flush_facts(conn_id)
        if st.decision is None:
            self.evaluate(conn_id, st, final=True)
        assert st.decision is not None  # evaluate(final=True) always decides
        return st.decision

    # ---- for subclasses

    def take(self, conn_id: int, st: ValidatorConnection, attr: Attribute) -> None:
        """Store what a received attribute tells (and report facts to the engine)."""

    def measure(self, conn_id: int, st: ValidatorConnection, policy: Policy) -> Measured | Need:
        raise NotImplementedError

    def request_message(self, requests: Sequence[Attribute]) -> tuple[int, int]:
        """The PA message type requests go out in (default: the first subscription)."""
        return self.SUBSCRIPTIONS[0]

    # ---- machinery

    def connection(self, conn_id: int) -> ValidatorConnection:
        st = self._conns.get(conn_id)
        if st is None:
            self.engine.open_connection(conn_id)
            st = self._conns[conn_id] = ValidatorConnection()
        return st

    def _to_collector(
        self, st: ValidatorConnection, message: PaMessage, vendor: int, subtype: int
    ) -> OutboundPa:
        return OutboundPa(
            vendor, subtype, message.serialize(),
            peer_id=st.collector_id, exclusive=st.collector_id != PID_ANY,
        )

    def now(self) -> _dt.datetime:
        return self.engine.clock()

    def _skip(self, conn_id: int, applied: AppliedEnforcement) -> bool:
        max_age = applied.enforcement.max_age
        device = self.engine.facts(conn_id).device_id
        if max_age is None or device is None:
            return False
        last = self.engine.last_compliant(device, applied.policy.name)
        return last is not None and self.now() - last <= max_age

    def evaluate(
        self, conn_id: int, st: ValidatorConnection, *, final: bool
    ) -> list[OutboundPa]:
        applied = self.engine.applicable(conn_id, self.TYPES)
        if not applied:
            if final:
                self.decide(
                    conn_id, st,
                    ValidatorRecommendation(ActionRecommendation.ALLOW, AssessmentResult.DONT_KNOW),
                )
            return []
        outcomes: list[tuple[AppliedEnforcement, Measured | None]] = []
        requests: list[Attribute] = []
        waiting = False
        for a in applied:
            if self._skip(conn_id, a):
                outcomes.append((a, None))
                continue
            m = self.measure(conn_id, st, a.policy)
            if isinstance(m, Need):
                if final:
                    m = Measured(None, {}, m.reason)
                else:
                    waiting = True
                    if m.key not in st.requested and m.request is not None:
                        st.requested.add(m.key)
                        for extra in (*m.companions, m.request):
                            if extra not in requests:
                                requests.append(extra)
                    continue
            outcomes.append((a, m))
        if waiting:
            if not requests:
                return []
            vendor, subtype = self.request_message(requests)
            return [self._to_collector(st, PaMessage.create(requests), vendor, subtype)]
        return self._conclude(conn_id, st, outcomes, final=final)

    def _conclude(
        self,
        conn_id: int,
        st: ValidatorConnection,
        outcomes: list[tuple[AppliedEnforcement, Measured | None]],
        *,
        final: bool,
    ) -> list[OutboundPa]:
        now = self.now()
        facts = self.engine.facts(conn_id)
        identity = self.engine.identity(conn_id)
        pairs: list[tuple[ActionRecommendation, AssessmentResult]] = []
        reasons: list[dict[str, str]] = []
        pa_attrs: list[Attribute] = []
        pb_rem: list[PbRemediationParameters] = []
        for a, m in outcomes:
            pol = a.policy
            remediation: list[str] = []
            if m is None:
                outcome, rec, ev = (
                    PolicyOutcome.SKIPPED, ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT
                )
                m = Measured(True, {}, f"passed within max_age {a.enforcement.max_age}")
            elif m.passed is True:
                outcome, rec, ev = (
                    PolicyOutcome.PASSED, ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT
                )
            elif m.passed is False:
                outcome, rec = PolicyOutcome.FAILED, a.rec_fail
                ev = evaluation_for(rec)
            else:
                outcome, rec = PolicyOutcome.NO_RESULT, a.rec_noresult
                ev = AssessmentResult.DONT_KNOW
            pairs.append((rec, ev))
            if outcome is PolicyOutcome.FAILED:
                reasons.append(dict(pol.reason) or {"en": m.reason or f"{pol.name} failed"})
            elif outcome is PolicyOutcome.NO_RESULT:
                reasons.append({"en": m.reason or f"{pol.name}: no result"})
            if outcome is PolicyOutcome.FAILED:
                remediation = self._remediate(conn_id, facts.device_id, identity, pol, now,
                                              pa_attrs, pb_rem)
            self.engine.policy_result(
                PolicyResult(
                    conn_id, facts.device_id, identity, pol.name, pol.type.value, a.group,
                    outcome, rec, ev, now, dict(m.evidence), m.reason, tuple(remediation),
                    self.NAME,
                )
            )
        rec, ev = combine_recommendations(pairs)
        decision = ValidatorRecommendation(rec, ev, _join_reasons(reasons), tuple(pb_rem))
        self.decide(conn_id, st, decision)
        if final:
            return []  # nothing more can be sent: the RESULT batch carries the decision
        attrs: list[Attribute] = [PaAssessmentResult(int(ev)), *pa_attrs]
        vendor, subtype = self.SUBSCRIPTIONS[0]
        return [self._to_collector(st, PaMessage.create(attrs), vendor, subtype)]

    def _remediate(
        self,
        conn_id: int,
        device_id: str | None,
        identity: str | None,
        pol: Policy,
        now: _dt.datetime,
        pa_attrs: list[Attribute],
        pb_rem: list[PbRemediationParameters],
    ) -> list[str]:
        sent = []
        if pol.remediation_uri:
            pa_attrs.append(RemediationInstructions.from_uri(pol.remediation_uri))
            pb_rem.append(PbRemediationParameters.uri(pol.remediation_uri))
            sent.append(pol.remediation_uri)
            self.engine.remediation_sent(RemediationRecord(
                conn_id, device_id, identity, self.NAME, pol.name, pol.remediation_uri, None,
                "", now,
            ))
        for lang, text in pol.remediation.items():
            pa_attrs.append(RemediationInstructions.from_string(text, lang))
            pb_rem.append(PbRemediationParameters.string(text, lang))
            sent.append(text)
            self.engine.remediation_sent(RemediationRecord(
                conn_id, device_id, identity, self.NAME, pol.name, None, text, lang, now,
            ))
        return sent

    def decide(self, conn_id: int, st: ValidatorConnection, rec: ValidatorRecommendation) -> None:
        st.decision = rec
        self.engine.validator_decided(conn_id, self.NAME, rec)
