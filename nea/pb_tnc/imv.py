"""The interface between the PB-TNC engines and posture validators (IMVs) / collectors (IMCs).

A small, synchronous rendering of TCG IF-IMV / IF-IMC semantics:

* a validator (collector) has an id (the Posture Validator/Collector Identifier of RFC 5793
  4.5) and subscribes to PA message types ``(vendor id, subtype)``; :data:`VENDOR_ANY` /
  :data:`SUBTYPE_ANY` are the wildcards of ``TNC_VENDORID_ANY`` / ``TNC_SUBTYPE_ANY``;
* the broker delivers each received PB-PA message to every subscriber, or, when the EXCL flag
  is set, only to the one whose id the message names;
* ``receive_message`` and ``batch_ending`` return the PA messages to send
  (IF-IMV ``SendMessage`` during ``ReceiveMessage`` / ``BatchEnding``);
* a validator that has made up its mind says so through ``provided_recommendation``
  (IF-IMV ``ProvideRecommendation``); until every validator has, the server keeps the
  exchange going (empty SDATA batches while validators work);  when the client has nothing
  more to say the server calls ``solicit_recommendation`` (IF-IMV ``SolicitRecommendation``)
  on the undecided ones;
* ``notify_connection_change`` tells of handshake start and of the final access state.

The server combines the validators' recommendations with a :class:`RecommendationPolicy`,
the ``default`` / ``any`` / ``all`` rules of strongSwan's ``recommendation_policy`` option.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nea.pb_tnc.messages import (
    PID_ANY,
    AccessRecommendation,
    AssessmentResult,
    PbPa,
    PbRemediationParameters,
)

__all__ = [
    "SUBTYPE_ANY",
    "VENDOR_ANY",
    "ActionRecommendation",
    "ConnectionState",
    "OutboundPa",
    "PostureCollector",
    "PostureValidator",
    "RecommendationPolicy",
    "ValidatorRecommendation",
    "combine_recommendations",
    "subscribed",
    "to_access_recommendation",
]

VENDOR_ANY = 0xFFFFFF
"""IF-IMV ``TNC_VENDORID_ANY``: subscribe to every vendor."""
SUBTYPE_ANY = 0xFF
"""IF-IMV ``TNC_SUBTYPE_ANY``: subscribe to every subtype of a vendor."""


class ConnectionState(enum.IntEnum):
    """IF-IMV/IF-IMC ``TNC_ConnectionState`` values."""

    CREATE = 0
    HANDSHAKE = 1
    ACCESS_ALLOWED = 2
    ACCESS_ISOLATED = 3
    ACCESS_NONE = 4
    DELETE = 5


class ActionRecommendation(enum.IntEnum):
    """IF-IMV ``TNC_IMV_Action_Recommendation`` values (allow / no access / isolate / none)."""

    ALLOW = 0
    NO_ACCESS = 1
    ISOLATE = 2
    NO_RECOMMENDATION = 3


class RecommendationPolicy(enum.Enum):
    """How the TNCS combines validator recommendations (strongSwan ``recommendation_policy``).

    ``default``: the most restrictive recommendation and the worst evaluation win.
    ``any``: the most permissive recommendation and the best evaluation win.
    ``all``: the validators must agree; otherwise no recommendation (access denied) and
    evaluation "don't know".
    """

    DEFAULT = "default"
    ANY = "any"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class OutboundPa:
    """A PA message a validator or collector wants sent.

    ``peer_id`` names the intended recipient (collector for a validator, validator for a
    collector); with ``exclusive`` the EXCL flag asks the peer broker to deliver it there only.
    """

    vendor_id: int
    subtype: int
    body: bytes
    peer_id: int = PID_ANY
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class ValidatorRecommendation:
    """What one validator recommends (IF-IMV ProvideRecommendation + GetAttribute)."""

    recommendation: ActionRecommendation
    evaluation: AssessmentResult
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Reason strings by language code (``{"en": "...", "de": "..."}``)."""
    remediation: tuple[PbRemediationParameters, ...] = ()


@runtime_checkable
class PostureValidator(Protocol):
    """A posture validator (IMV) as the TNCS sees it."""

    @property
    def validator_id(self) -> int: ...

    @property
    def subscriptions(self) -> Collection[tuple[int, int]]: ...

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None: ...

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]: ...

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]: ...

    def provided_recommendation(self, conn_id: int) -> ValidatorRecommendation | None:
        """The recommendation once the validator has decided, None while it still works."""
        ...

    def solicit_recommendation(self, conn_id: int) -> ValidatorRecommendation:
        """Decide now: the client has nothing more to send."""
        ...


@runtime_checkable
class PostureCollector(Protocol):
    """A posture collector (IMC) as the TNCC sees it."""

    @property
    def collector_id(self) -> int: ...

    @property
    def subscriptions(self) -> Collection[tuple[int, int]]: ...

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None: ...

    def begin_handshake(self, conn_id: int) -> Sequence[OutboundPa]: ...

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]: ...

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]: ...


def subscribed(subscriptions: Collection[tuple[int, int]], vendor_id: int, subtype: int) -> bool:
    """Whether ``(vendor_id, subtype)`` matches a subscription, wildcards included."""
    for vendor, sub in subscriptions:
        if vendor == VENDOR_ANY:
            return True
        if vendor == vendor_id and sub in (subtype, SUBTYPE_ANY):
            return True
    return False


# Restrictiveness order of the "default" policy: allow < isolate < no access; "none" yields.
_REC_RANK = {
    ActionRecommendation.ALLOW: 0,
    ActionRecommendation.ISOLATE: 1,
    ActionRecommendation.NO_ACCESS: 2,
}
# Severity order of evaluations: compliant < minor < major < error; "don't know" yields.
_EVAL_RANK = {
    AssessmentResult.COMPLIANT: 0,
    AssessmentResult.NONCOMPLIANT_MINOR: 1,
    AssessmentResult.NONCOMPLIANT_MAJOR: 2,
    AssessmentResult.ERROR: 3,
}


def _most_restrictive(a: ActionRecommendation, b: ActionRecommendation) -> ActionRecommendation:
    if a == ActionRecommendation.NO_RECOMMENDATION:
        return b
    if b == ActionRecommendation.NO_RECOMMENDATION:
        return a
    return a if _REC_RANK[a] >= _REC_RANK[b] else b


def _worst(a: AssessmentResult, b: AssessmentResult) -> AssessmentResult:
    if a == AssessmentResult.DONT_KNOW:
        return b
    if b == AssessmentResult.DONT_KNOW:
        return a
    return a if _EVAL_RANK[a] >= _EVAL_RANK[b] else b


def _most_permissive(a: ActionRecommendation, b: ActionRecommendation) -> ActionRecommendation:
    if a == ActionRecommendation.NO_RECOMMENDATION:
        return b
    if b == ActionRecommendation.NO_RECOMMENDATION:
        return a
    return a if _REC_RANK[a] <= _REC_RANK[b] else b


def _best(a: AssessmentResult, b: AssessmentResult) -> AssessmentResult:
    if a == AssessmentResult.DONT_KNOW:
        return b
    if b == AssessmentResult.DONT_KNOW:
        return a
    return a if _EVAL_RANK[a] <= _EVAL_RANK[b] else b


def combine_recommendations(
    recommendations: Sequence[tuple[ActionRecommendation, AssessmentResult]],
    policy: RecommendationPolicy = RecommendationPolicy.DEFAULT,
) -> tuple[ActionRecommendation, AssessmentResult]:
    """Combine per-validator ``(recommendation, evaluation)`` pairs by ``policy``.

    With no validators at all the result is no recommendation / don't know (which
    :func:`to_access_recommendation` turns into Access Denied).
    """
    if not recommendations:
        return ActionRecommendation.NO_RECOMMENDATION, AssessmentResult.DONT_KNOW
    rec, ev = recommendations[0]
    for other_rec, other_ev in recommendations[1:]:
        if policy is RecommendationPolicy.DEFAULT:
            rec, ev = _most_restrictive(rec, other_rec), _worst(ev, other_ev)
        elif policy is RecommendationPolicy.ANY:
            rec, ev = _most_permissive(rec, other_rec), _best(ev, other_ev)
        else:
            if other_rec != rec:
                rec = ActionRecommendation.NO_RECOMMENDATION
            if other_ev != ev:
                ev = AssessmentResult.DONT_KNOW
    return rec, ev


def to_access_recommendation(
    recommendation: ActionRecommendation,
) -> tuple[AccessRecommendation, ConnectionState]:
    """IF-IMV recommendation -> PB-Access-Recommendation and the connection state IMVs see.

    Allow -> Allowed, isolate -> Quarantined, no access and no recommendation -> Denied.
    """
    if recommendation == ActionRecommendation.ALLOW:
        return AccessRecommendation.ALLOWED, ConnectionState.ACCESS_ALLOWED
    if recommendation == ActionRecommendation.ISOLATE:
        return AccessRecommendation.QUARANTINED, ConnectionState.ACCESS_ISOLATED
    return AccessRecommendation.DENIED, ConnectionState.ACCESS_NONE
