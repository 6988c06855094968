"""The policy engine: which enforcements apply to which connection, and policy reloads.

One :class:`PolicyEngine` serves every validator of a gateway. It keeps, per PB-TNC
connection, the identity the gateway bound to it and the facts the validators measured
(product, version, device id ...), resolves the device's groups and the enforcements that
apply, and forwards the validators' records to the :class:`~nea.imv.evidence.EvidenceSink`.

A policy change goes through :meth:`PolicyEngine.reload`, which returns the connections whose
applicable enforcements (or package table) changed: the gateway calls
``Tncs.request_retry()`` on each to re-assess them (SRETRY). Validators that want a handshake
retry themselves (the test validator's ``retry``) call :meth:`request_retry`; the gateway
collects those with :meth:`take_retry_requests`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from nea.imv.evidence import (
    DeviceFacts,
    EvidenceSink,
    NullEvidenceSink,
    PolicyResult,
    RemediationRecord,
    SessionDecision,
    SessionStart,
)
from nea.pb_tnc.imv import (
    ActionRecommendation,
    ConnectionState,
    RecommendationPolicy,
    ValidatorRecommendation,
    combine_recommendations,
)
from nea.pb_tnc.messages import AccessRecommendation, AssessmentResult
from nea.policy.config import (
    Enforcement,
    Policy,
    PolicyConfig,
    PolicyType,
    ProductTable,
)

__all__ = ["AppliedEnforcement", "PolicyEngine", "WallClock"]

WallClock = Callable[[], _dt.datetime]
"""Returns the current time as an aware UTC datetime."""

_FACT_FIELDS = tuple(f.name for f in fields(DeviceFacts) if f.name not in ("connection_id", "at"))
_PACKAGE_TYPES = frozenset({PolicyType.PCKGS, PolicyType.UNSRC})
_ACCESS = {
    ConnectionState.ACCESS_ALLOWED: AccessRecommendation.ALLOWED,
    ConnectionState.ACCESS_ISOLATED: AccessRecommendation.QUARANTINED,
    ConnectionState.ACCESS_NONE: AccessRecommendation.DENIED,
}


@dataclass(frozen=True)
class AppliedEnforcement:
    """A policy that applies to a connection, through an enforcement on one of its groups."""

    policy: Policy
    enforcement: Enforcement

    @property
    def group(self) -> str:
        return self.enforcement.group

    @property
    def rec_fail(self) -> ActionRecommendation:
        r = self.enforcement.rec_fail
        return self.policy.rec_fail if r is None else r

    @property
    def rec_noresult(self) -> ActionRecommendation:
        r = self.enforcement.rec_noresult
        return self.policy.rec_noresult if r is None else r


@dataclass
class _Connection:
    identity: str | None
    state: ConnectionState = ConnectionState.CREATE
    facts: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    decided: dict[str, tuple[ActionRecommendation, AssessmentResult, str]] = field(
        default_factory=dict
    )
    handshakes: int = 0


class PolicyEngine:
    """Shared by the validators of one gateway; sans-I/O (clock and sink passed in).

    ``recommendation_policy`` must be the one the TNCS uses (``PbTncConfig``): the engine
    repeats the combination for the :class:`SessionDecision` it reports (the access value
    itself comes from the TNCS's final connection state).
    """

    def __init__(
        self,
        policy: PolicyConfig,
        *,
        clock: WallClock,
        sink: EvidenceSink | None = None,
        recommendation_policy: RecommendationPolicy = RecommendationPolicy.DEFAULT,
    ) -> None:
        self._policy = policy
        self.clock = clock
        self.sink: EvidenceSink = sink if sink is not None else NullEvidenceSink()
        self.recommendation_policy = recommendation_policy
        self._conns: dict[int, _Connection] = {}
        self._retry: set[int] = set()

    @property
    def policy(self) -> PolicyConfig:
        return self._policy

    # ---- connections

    def open_connection(self, connection_id: int, identity: str | None = None) -> None:
        """Bind the authenticated identity to a connection (before or after the TNCS is built)."""
        conn = self._conns.get(connection_id)
        if conn is None:
            self._conns[connection_id] = _Connection(identity)
        elif identity is not None:
            conn.identity = identity

    @property
    def connections(self) -> frozenset[int]:
        return frozenset(self._conns)

    def identity(self, connection_id: int) -> str | None:
        conn = self._conns.get(connection_id)
        return conn.identity if conn else None

    def handshakes(self, connection_id: int) -> int:
        """How many handshakes (1 = the first, 2 = after one retry ...) have started."""
        conn = self._conns.get(connection_id)
        return conn.handshakes if conn else 0

    def _conn(self, connection_id: int) -> _Connection:
        conn = self._conns.get(connection_id)
        if conn is None:
            conn = self._conns[connection_id] = _Connection(None)
        return conn

    def facts(self, connection_id: int) -> DeviceFacts:
        """The merged facts measured on this connection (this handshake and before)."""
        conn = self._conn(connection_id)
        return DeviceFacts(connection_id, self.clock(), **conn.facts)

    def record_facts(self, connection_id: int, **values: Any) -> None:
        """Merge measured facts (DeviceFacts field names); :meth:`flush_facts` reports them."""
        unknown = set(values) - set(_FACT_FIELDS)
        if unknown:
            raise TypeError(f"not DeviceFacts fields: {sorted(unknown)}")
        values = {k: v for k, v in values.items() if v is not None}
        conn = self._conn(connection_id)
        conn.facts.update(values)
        conn.pending.update(values)

    def flush_facts(self, connection_id: int) -> None:
        """Report the facts recorded since the last flush as one :class:`DeviceFacts`
        (validators call this at each batch end, so a sink sees one record per batch)."""
        conn = self._conns.get(connection_id)
        if conn is None or not conn.pending:
            return
        pending, conn.pending = conn.pending, {}
        self.sink.facts_measured(DeviceFacts(connection_id, self.clock(), **pending))

    # ---- connection state, reported by every validator (deduplicated here)

    def connection_changed(self, connection_id: int, state: ConnectionState) -> None:
        if state is ConnectionState.DELETE and connection_id not in self._conns:
            return  # another validator already reported the end
        conn = self._conn(connection_id)
        old, conn.state = conn.state, state
        if old == state:
            return
        self.flush_facts(connection_id)
        now = self.clock()
        if state is ConnectionState.HANDSHAKE:
            conn.handshakes += 1
            conn.decided.clear()
            self.sink.session_started(
                SessionStart(connection_id, conn.identity, now, retry=conn.handshakes > 1)
            )
        elif state in _ACCESS:
            pairs = [(r, e) for r, e, _ in conn.decided.values()]
            action, evaluation = combine_recommendations(pairs, self.recommendation_policy)
            self.sink.session_decided(
                SessionDecision(
                    connection_id,
                    conn.facts.get("device_id"),
                    conn.identity,
                    _ACCESS[state],
                    action,
                    evaluation,
                    now,
                    {name: (r, e) for name, (r, e, _) in conn.decided.items()},
                    {name: reason for name, (_, _, reason) in conn.decided.items() if reason},
                )
            )
        elif state is ConnectionState.DELETE:
            self.sink.session_ended(connection_id, now)
            self._conns.pop(connection_id, None)
            self._retry.discard(connection_id)

    def validator_decided(
        self, connection_id: int, validator: str, rec: ValidatorRecommendation
    ) -> None:
        reason = rec.reasons.get("en") or next(iter(rec.reasons.values()), "")
        self._conn(connection_id).decided[validator] = (rec.recommendation, rec.evaluation, reason)

    def policy_result(self, result: PolicyResult) -> None:
        self.sink.policy_result(result)

    def remediation_sent(self, record: RemediationRecord) -> None:
        self.sink.remediation_sent(record)

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        return self.sink.last_compliant(device_id, policy)

    # ---- retries

    def request_retry(self, connection_id: int) -> None:
        """A validator wants this connection re-assessed (IF-IMV RequestHandshakeRetry)."""
        if connection_id in self._conns:
            self._retry.add(connection_id)

    def take_retry_requests(self) -> set[int]:
        """The connections validators asked to retry since the last call (then forgotten)."""
        out, self._retry = self._retry, set()
        return out

    # ---- groups and enforcements

    def groups_of(self, connection_id: int, policy: PolicyConfig | None = None) -> list[str]:
        """The connection's device groups, each followed by its ancestors (deduplicated)."""
        cfg = policy if policy is not None else self._policy
        conn = self._conn(connection_id)
        facts = DeviceFacts(connection_id, _dt.datetime.min, **conn.facts)
        out: list[str] = []
        for group in cfg.groups.values():
            if group.matches(conn.identity, facts.os_label, facts.device_id):
                for name in cfg.ancestors(group.name):
                    if name not in out:
                        out.append(name)
        return out

    def applicable(
        self,
        connection_id: int,
        types: Collection[PolicyType] | None = None,
        policy: PolicyConfig | None = None,
    ) -> list[AppliedEnforcement]:
        """The enforcements that apply, one per policy; a policy enforced on several of the
        device's groups takes the enforcement of the most specific (deepest) group."""
        cfg = policy if policy is not None else self._policy
        groups = set(self.groups_of(connection_id, cfg))
        best: dict[str, tuple[int, Enforcement]] = {}
        for enf in cfg.enforcements:
            if enf.group not in groups:
                continue
            pol = cfg.policies[enf.policy]
            if types is not None and pol.type not in types:
                continue
            depth = len(cfg.ancestors(enf.group))
            if enf.policy not in best or depth > best[enf.policy][0]:
                best[enf.policy] = (depth, enf)
        return [
            AppliedEnforcement(cfg.policies[name], enf)
            for name, (_, enf) in sorted(best.items())
        ]

    def product_table(self, connection_id: int) -> ProductTable | None:
        return self._policy.product_table(self.facts(connection_id).os_label)

    def reload(self, new_policy: PolicyConfig) -> set[int]:
        """Switch to ``new_policy``; return the live connections to re-assess (SRETRY).

        A connection is affected when the set of enforcements that apply to it changed (a
        policy, its argument or recommendations, an enforcement or group membership), or
        when it is subject to a package policy and its product's package table changed.
        """
        affected = set()
        for cid, conn in self._conns.items():
            if conn.state in (ConnectionState.CREATE, ConnectionState.DELETE):
                continue
            old = self.applicable(cid, policy=self._policy)
            new = self.applicable(cid, policy=new_policy)
            if _signature(old) != _signature(new):
                affected.add(cid)
                continue
            if any(a.policy.type in _PACKAGE_TYPES for a in new):
                label = DeviceFacts(cid, _dt.datetime.min, **conn.facts).os_label
                if _table_sig(self._policy.product_table(label)) != _table_sig(
                    new_policy.product_table(label)
                ):
                    affected.add(cid)
        self._policy = new_policy
        return affected


def _signature(applied: list[AppliedEnforcement]) -> list[tuple[object, ...]]:
    return [
        (a.policy.name, _policy_sig(a.policy), a.enforcement, a.rec_fail, a.rec_noresult)
        for a in applied
    ]


def _policy_sig(p: Policy) -> tuple[object, ...]:
    def items(m: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(m.items()))

    return (
        replace(p, reason={}, remediation={}),
        items(p.reason),
        items(p.remediation),
    )


def _table_sig(table: ProductTable | None) -> object:
    if table is None:
        return None
    return (table.pattern, tuple(sorted(table.packages.items())))
