"""The reports of ``nea-report`` as SQL aggregate queries over the evidence database.

Every report is computed by the database (GROUP BY, MAX, COUNT, CASE sums); Python only sees
the grouped rows, so the cost does not grow with the number of sessions kept in memory.

Definitions used throughout:

* A session's *state* is its final recommendation (``allow``, ``isolate``, ``block``,
  ``none``) or ``interrupted`` when it has none (the connection ended or the gateway stopped
  before a verdict).
* A device's *latest state* is its newest session with a verdict (within ``--since`` /
  ``--until`` when given). A device is *compliant* when that verdict is ``allow``.
* The *compliance rate* is compliant devices / devices with a verdict, in percent (sessions
  in which the endpoint reported no device id are counted in the session figures only).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Subquery,
    case,
    func,
    literal_column,
    select,
)

from gateway.db.models import (
    DEVICES_TABLE as D,
)
from gateway.db.models import (
    ENFORCEMENTS_TABLE as E,
)
from gateway.db.models import (
    GROUPS_TABLE as G,
)
from gateway.db.models import (
    IDENTITIES_TABLE as ID,
)
from gateway.db.models import (
    INVENTORIES_TABLE as INV,
)
from gateway.db.models import (
    POLICIES_TABLE as P,
)
from gateway.db.models import (
    PRODUCTS_TABLE as PR,
)
from gateway.db.models import (
    REMEDIATIONS_TABLE as RM,
)
from gateway.db.models import (
    RESULTS_TABLE as R,
)
from gateway.db.models import (
    SESSIONS_TABLE as S,
)
from gateway.report.model import Chart, Report, Section

__all__ = [
    "NotFound",
    "Window",
    "compliance",
    "endpoint_report",
    "endpoints_report",
    "noncompliant_report",
    "policies_report",
    "sessions_report",
    "summary_report",
]

GREEN, AMBER, RED, GREY, BLUE = "#2e7d32", "#f9a825", "#c62828", "#9e9e9e", "#1565c0"
_REC_ORDER = ("allow", "isolate", "block", "none", "interrupted")
_NOT_PASSED = ("failed", "no_result")


class NotFound(LookupError):
    """The device asked for is not in the database."""


@dataclass(frozen=True)
class Window:
    """``--since`` / ``--until`` (aware UTC datetimes, either may be None)."""

    since: _dt.datetime | None = None
    until: _dt.datetime | None = None

    def on(self, column: Any) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.since is not None:
            out.append(column >= self.since)
        if self.until is not None:
            out.append(column < self.until)
        return out

    def describe(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 1)


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def _state() -> Any:
    # only in SELECT lists: PostgreSQL cannot match a bound literal in GROUP BY
    return func.coalesce(S.c.recommendation, literal_column("'interrupted'"))


def _latest_decided(window: Window) -> Subquery:
    """device row id -> its newest session with a verdict (in the window)."""
    return (
        select(S.c.device_id.label("device_id"), func.max(S.c.id).label("sid"))
        .where(
            S.c.device_id.is_not(None), S.c.recommendation.is_not(None), *window.on(S.c.started_at)
        )
        .group_by(S.c.device_id)
        .subquery("latest")
    )


# --------------------------------------------------------------------------- compliance


def compliance(conn: Connection, window: Window) -> tuple[int, int, float | None]:
    """(compliant devices, devices with a verdict, rate in percent or None)."""
    latest = _latest_decided(window)
    row = conn.execute(
        select(func.count(), _count_if(S.c.recommendation == "allow")).select_from(
            latest.join(S, S.c.id == latest.c.sid)
        )
    ).one()
    total, ok = int(row[0]), int(row[1])
    return ok, total, _pct(ok, total)


# --------------------------------------------------------------------------- summary


def summary_report(conn: Connection, window: Window) -> Report:
    counts = conn.execute(
        select(
            func.count(),
            _count_if(S.c.recommendation.is_not(None)),
            _count_if(S.c.recommendation == "allow"),
            func.count(func.distinct(S.c.device_id)),
            func.count(func.distinct(S.c.identity_id)),
        ).where(*window.on(S.c.started_at))
    ).one()
    sessions, decided, allowed, devices, identities = (int(x) for x in counts)
    ok, assessed, rate = compliance(conn, window)
    figures = {
        "compliance_rate": rate,
        "compliant_devices": ok,
        "noncompliant_devices": assessed - ok,
        "assessed_devices": assessed,
        "devices": devices,
        "identities": identities,
        "sessions": sessions,
        "decided_sessions": decided,
        "interrupted_sessions": sessions - decided,
        "session_allow_rate": _pct(allowed, decided),
    }

    by_rec_rows = conn.execute(
        select(S.c.recommendation, func.count())
        .where(*window.on(S.c.started_at))
        .group_by(S.c.recommendation)
    ).all()
    by_rec = {str(state or "interrupted"): int(n) for state, n in by_rec_rows}
    rec_rows = [
        {"recommendation": k, "sessions": by_rec[k], "percent": _pct(by_rec[k], sessions)}
        for k in sorted(by_rec, key=lambda k: (_REC_ORDER.index(k) if k in _REC_ORDER else 9, k))
    ]

    latest = _latest_decided(window)
    os_rows = conn.execute(
        select(PR.c.name, func.count(), _count_if(S.c.recommendation == "allow"))
        .select_from(
            latest.join(S, S.c.id == latest.c.sid).outerjoin(PR, PR.c.id == S.c.product_id)
        )
        .group_by(PR.c.name)
        .order_by(func.count().desc(), PR.c.name)
    ).all()
    by_os = [
        {
            "os": name or "(unknown)",
            "devices": int(n),
            "compliant": int(c),
            "noncompliant": int(n) - int(c),
            "compliance_rate": _pct(int(c), int(n)),
        }
        for name, n, c in os_rows
    ]

    by_policy = _policy_counts(conn, window)
    day = func.date(S.c.started_at)
    trend_rows = conn.execute(
        select(
            day,
            func.count(),
            _count_if(S.c.recommendation == "allow"),
            _count_if(S.c.recommendation == "isolate"),
            _count_if(S.c.recommendation.in_(("block", "none"))),
            _count_if(S.c.recommendation.is_(None)),
        )
        .where(*window.on(S.c.started_at))
        .group_by(day)
        .order_by(day)
    ).all()
    trend = [
        {
            "day": str(d),
            "sessions": int(n),
            "allow": int(a),
            "isolate": int(i),
            "block": int(b),
            "interrupted": int(x),
            "allow_rate": _pct(int(a), int(n) - int(x)),
        }
        for d, n, a, i, b, x in trend_rows
    ]
    return Report(
        name="summary",
        title="Compliance summary",
        figures=figures,
        sections=[
            Section(
                "by_recommendation",
                "Sessions by final recommendation",
                ["recommendation", "sessions", "percent"],
                rec_rows,
                Chart("bars", "recommendation", (("sessions", BLUE),)),
            ),
            Section(
                "by_os",
                "Devices by OS (latest verdict)",
                ["os", "devices", "compliant", "noncompliant", "compliance_rate"],
                by_os,
                Chart("bars", "os", (("compliant", GREEN), ("noncompliant", RED))),
            ),
            Section(
                "by_policy",
                "Results by policy",
                ["policy", "type", "passed", "failed", "no_result", "skipped", "pass_rate"],
                [
                    {
                        k: r[k]
                        for k in (
                            "policy",
                            "type",
                            "passed",
                            "failed",
                            "no_result",
                            "skipped",
                            "pass_rate",
                        )
                    }
                    for r in by_policy
                ],
                Chart(
                    "bars",
                    "policy",
                    (("passed", GREEN), ("skipped", BLUE), ("no_result", AMBER), ("failed", RED)),
                ),
            ),
            Section(
                "trend",
                "Sessions per day (UTC)",
                ["day", "sessions", "allow", "isolate", "block", "interrupted", "allow_rate"],
                trend,
                Chart(
                    "columns",
                    "day",
                    (("allow", GREEN), ("isolate", AMBER), ("block", RED), ("interrupted", GREY)),
                ),
            ),
        ],
    )


def _policy_counts(conn: Connection, window: Window) -> list[dict[str, Any]]:
    counts = (
        select(
            R.c.policy_id.label("policy_id"),
            _count_if(R.c.outcome == "passed").label("passed"),
            _count_if(R.c.outcome == "failed").label("failed"),
            _count_if(R.c.outcome == "no_result").label("no_result"),
            _count_if(R.c.outcome == "skipped").label("skipped"),
        )
        .where(*window.on(R.c.at))
        .group_by(R.c.policy_id)
        .subquery("counts")
    )
    rows = conn.execute(
        select(
            P.c.id,
            P.c.name,
            P.c.type,
            P.c.active,
            counts.c.passed,
            counts.c.failed,
            counts.c.no_result,
            counts.c.skipped,
        )
        .select_from(P.outerjoin(counts, counts.c.policy_id == P.c.id))
        .order_by(P.c.name)
    ).all()
    out = []
    for pid, name, ptype, active, passed, failed, noresult, skipped in rows:
        passed, failed, noresult, skipped = (
            int(x or 0) for x in (passed, failed, noresult, skipped)
        )
        total = passed + failed + noresult + skipped
        out.append(
            {
                "id": pid,
                "policy": name,
                "type": ptype,
                "active": bool(active),
                "results": total,
                "passed": passed,
                "failed": failed,
                "no_result": noresult,
                "skipped": skipped,
                "pass_rate": _pct(passed + skipped, total),
            }
        )
    return out


# --------------------------------------------------------------------------- policies


def policies_report(conn: Connection, window: Window) -> Report:
    policies = _policy_counts(conn, window)
    enforced = conn.execute(
        select(E.c.policy_id, G.c.name, E.c.max_age, E.c.active)
        .join_from(E, G, G.c.id == E.c.group_id)
        .order_by(G.c.name)
    ).all()
    groups: dict[int, list[str]] = {}
    for pid, group, max_age, active in enforced:
        if active:
            groups.setdefault(pid, []).append(
                group if max_age is None else f"{group} (max_age {max_age}s)"
            )
    latest = _latest_decided(window)
    failing_rows = conn.execute(
        select(R.c.policy_id, func.count(func.distinct(R.c.device_id)))
        .select_from(latest.join(R, R.c.session_id == latest.c.sid))
        .where(R.c.outcome.in_(_NOT_PASSED), R.c.recommendation != "allow")
        .group_by(R.c.policy_id)
    ).all()
    failing = {pid: int(n) for pid, n in failing_rows}
    rows = [
        {
            "policy": p["policy"],
            "type": p["type"],
            "active": p["active"],
            "groups": ", ".join(groups.get(p["id"], [])),
            "results": p["results"],
            "passed": p["passed"],
            "failed": p["failed"],
            "no_result": p["no_result"],
            "skipped": p["skipped"],
            "pass_rate": p["pass_rate"],
            "devices_failing": failing.get(p["id"], 0),
        }
        for p in policies
    ]
    return Report(
        name="policies",
        title="Pass/fail per policy",
        figures={
            "policies": len(rows),
            "results": sum(r["results"] for r in rows),
            "failed": sum(r["failed"] for r in rows),
        },
        sections=[
            Section(
                "policies",
                "Policies",
                [
                    "policy",
                    "type",
                    "active",
                    "groups",
                    "results",
                    "passed",
                    "failed",
                    "no_result",
                    "skipped",
                    "pass_rate",
                    "devices_failing",
                ],
                rows,
                Chart(
                    "bars",
                    "policy",
                    (("passed", GREEN), ("skipped", BLUE), ("no_result", AMBER), ("failed", RED)),
                ),
                empty="no policies (the gateway writes them from its policy file)",
            )
        ],
    )


# --------------------------------------------------------------------------- endpoints


def endpoints_report(conn: Connection, window: Window) -> Report:
    per_device = (
        select(
            S.c.device_id.label("device_id"),
            func.max(S.c.id).label("sid"),
            func.count().label("sessions"),
        )
        .where(S.c.device_id.is_not(None), *window.on(S.c.started_at))
        .group_by(S.c.device_id)
        .subquery("per_device")
    )
    not_passed = (
        select(R.c.session_id.label("session_id"), func.count().label("failed"))
        .select_from(per_device.join(R, R.c.session_id == per_device.c.sid))
        .where(R.c.outcome.in_(_NOT_PASSED), R.c.recommendation != "allow")
        .group_by(R.c.session_id)
        .subquery("not_passed")
    )
    rows = conn.execute(
        select(
            D.c.value,
            PR.c.name,
            ID.c.name,
            S.c.address,
            S.c.started_at,
            _state(),
            S.c.evaluation,
            per_device.c.sessions,
            func.coalesce(not_passed.c.failed, 0),
        )
        .select_from(
            per_device.join(D, D.c.id == per_device.c.device_id)
            .join(S, S.c.id == per_device.c.sid)
            .outerjoin(PR, PR.c.id == S.c.product_id)
            .outerjoin(ID, ID.c.id == S.c.identity_id)
            .outerjoin(not_passed, not_passed.c.session_id == S.c.id)
        )
        .order_by(D.c.value)
    ).all()
    out = [
        {
            "device": dev,
            "os": os,
            "identity": who,
            "address": addr,
            "last_seen": _iso(at),
            "state": state,
            "evaluation": ev,
            "sessions": int(n),
            "failed_policies": int(f),
        }
        for dev, os, who, addr, at, state, ev, n, f in rows
    ]
    states: dict[str, int] = {}
    for r in out:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return Report(
        name="endpoints",
        title="Endpoints (latest state of each device)",
        figures={"devices": len(out), **{f"state_{k}": v for k, v in sorted(states.items())}},
        sections=[
            Section(
                "endpoints",
                "Endpoints",
                [
                    "device",
                    "os",
                    "identity",
                    "address",
                    "last_seen",
                    "state",
                    "evaluation",
                    "sessions",
                    "failed_policies",
                ],
                out,
                empty="no endpoint reported a device id",
            )
        ],
    )


def endpoint_report(
    conn: Connection, device: str, window: Window, limit: int | None = 20
) -> Report:
    found = conn.execute(
        select(D.c.id, D.c.value, D.c.first_seen, D.c.last_seen, PR.c.name)
        .select_from(D.outerjoin(PR, PR.c.id == D.c.product_id))
        .where(D.c.value == device)
    ).first()
    if found is None:
        raise NotFound(f"no device {device!r} in the evidence database")
    did = found[0]
    query = (
        select(
            S.c.id,
            S.c.started_at,
            S.c.ended_at,
            ID.c.name,
            S.c.address,
            PR.c.name,
            _state(),
            S.c.access,
            S.c.evaluation,
            S.c.reasons,
            S.c.facts,
            S.c.packages_inventory_id,
            S.c.swima_inventory_id,
        )
        .select_from(
            S.outerjoin(ID, ID.c.id == S.c.identity_id).outerjoin(PR, PR.c.id == S.c.product_id)
        )
        .where(S.c.device_id == did, *window.on(S.c.started_at))
        .order_by(S.c.id.desc())
    )
    if limit:
        query = query.limit(limit)
    sessions = []
    inventories: set[int] = set()
    for (
        sid,
        start,
        end,
        who,
        addr,
        os,
        state,
        access,
        ev,
        reasons,
        facts,
        pkg,
        swima,
    ) in conn.execute(query):
        sessions.append(
            {
                "session": sid,
                "started": _iso(start),
                "ended": _iso(end),
                "identity": who,
                "address": addr,
                "os": os,
                "state": state,
                "access": access,
                "evaluation": ev,
                "reasons": "; ".join(f"{k}: {v}" for k, v in json.loads(reasons or "{}").items()),
                "facts": json.loads(facts or "{}"),
                "packages_inventory": pkg,
                "swima_inventory": swima,
            }
        )
        inventories.update(i for i in (pkg, swima) if i is not None)
    ids = [s["session"] for s in sessions]
    results = []
    remediations = []
    for chunk in _chunks(ids, 500):
        for (
            sid,
            policy,
            ptype,
            group,
            outcome,
            rec,
            ev,
            reason,
            evidence,
            remedy,
            at,
        ) in conn.execute(
            select(
                R.c.session_id,
                P.c.name,
                P.c.type,
                G.c.name,
                R.c.outcome,
                R.c.recommendation,
                R.c.evaluation,
                R.c.reason,
                R.c.evidence,
                R.c.remediation,
                R.c.at,
            )
            .select_from(R.join(P, P.c.id == R.c.policy_id).outerjoin(G, G.c.id == R.c.group_id))
            .where(R.c.session_id.in_(chunk))
            .order_by(R.c.session_id.desc(), R.c.id)
        ):
            results.append(
                {
                    "session": sid,
                    "policy": policy,
                    "type": ptype,
                    "group": group,
                    "outcome": outcome,
                    "recommendation": rec,
                    "evaluation": ev,
                    "reason": reason,
                    "evidence": json.loads(evidence or "{}"),
                    "remediation": json.loads(remedy or "[]"),
                    "at": _iso(at),
                }
            )
        for sid, policy, validator, uri, text, lang, at in conn.execute(
            select(
                RM.c.session_id,
                P.c.name,
                RM.c.validator,
                RM.c.uri,
                RM.c.text,
                RM.c.language,
                RM.c.at,
            )
            .select_from(RM.outerjoin(P, P.c.id == RM.c.policy_id))
            .where(RM.c.session_id.in_(chunk))
            .order_by(RM.c.session_id.desc(), RM.c.id)
        ):
            remediations.append(
                {
                    "session": sid,
                    "policy": policy,
                    "validator": validator,
                    "uri": uri,
                    "text": text,
                    "language": lang,
                    "at": _iso(at),
                }
            )
    inv_rows = []
    if inventories:
        for iid, kind, count, seen in conn.execute(
            select(INV.c.id, INV.c.kind, INV.c.count, INV.c.first_seen)
            .where(INV.c.id.in_(sorted(inventories)))
            .order_by(INV.c.id)
        ):
            inv_rows.append(
                {"inventory": iid, "kind": kind, "items": int(count), "first_seen": _iso(seen)}
            )
    total = conn.execute(
        select(func.count()).where(S.c.device_id == did, *window.on(S.c.started_at))
    ).scalar_one()
    figures = {
        "device": found[1],
        "os": found[4],
        "first_seen": _iso(found[2]),
        "last_seen": _iso(found[3]),
        "sessions": int(total),
        "latest_state": sessions[0]["state"] if sessions else None,
    }
    for s in sessions:
        key = f"state_{s['state']}"
        figures[key] = figures.get(key, 0) + 1
    return Report(
        name="endpoint",
        title=f"Endpoint {found[1]}",
        figures=figures,
        sections=[
            Section(
                "sessions",
                "Sessions (newest first)",
                [
                    "session",
                    "started",
                    "ended",
                    "identity",
                    "address",
                    "os",
                    "state",
                    "access",
                    "evaluation",
                    "reasons",
                    "facts",
                ],
                sessions,
            ),
            Section(
                "results",
                "Per-policy results",
                [
                    "session",
                    "policy",
                    "type",
                    "group",
                    "outcome",
                    "recommendation",
                    "evaluation",
                    "reason",
                    "evidence",
                    "remediation",
                ],
                results,
                empty="no policy results",
            ),
            Section(
                "remediations",
                "Remediation sent",
                ["session", "policy", "validator", "uri", "text", "language", "at"],
                remediations,
                empty="no remediation sent",
            ),
            Section(
                "inventories",
                "Inventories",
                ["inventory", "kind", "items", "first_seen"],
                inv_rows,
                empty="no package or SWIMA inventory collected",
            ),
        ],
    )


# --------------------------------------------------------------------------- sessions


def sessions_report(
    conn: Connection,
    window: Window,
    limit: int | None = None,
    device: str | None = None,
    identity: str | None = None,
) -> Report:
    query: Select[Any] = (
        select(
            S.c.id,
            S.c.started_at,
            S.c.ended_at,
            ID.c.name,
            D.c.value,
            PR.c.name,
            S.c.address,
            _state(),
            S.c.access,
            S.c.evaluation,
            S.c.retry,
        )
        .select_from(
            S.outerjoin(ID, ID.c.id == S.c.identity_id)
            .outerjoin(D, D.c.id == S.c.device_id)
            .outerjoin(PR, PR.c.id == S.c.product_id)
        )
        .where(*window.on(S.c.started_at))
        .order_by(S.c.started_at, S.c.id)
    )
    filters: list[ColumnElement[bool]] = []
    if device is not None:
        filters.append(D.c.value == device)
    if identity is not None:
        filters.append(ID.c.name == identity)
    query = query.where(*filters)
    if limit:
        query = query.limit(limit)
    counted = conn.execute(
        select(S.c.recommendation, func.count())
        .select_from(
            S.outerjoin(ID, ID.c.id == S.c.identity_id).outerjoin(D, D.c.id == S.c.device_id)
        )
        .where(*window.on(S.c.started_at), *filters)
        .group_by(S.c.recommendation)
    ).all()
    counts = {str(state or "interrupted"): int(n) for state, n in counted}

    def rows() -> Iterator[dict[str, Any]]:
        # streamed while the report is written (server-side cursor on PostgreSQL)
        result = conn.execution_options(yield_per=2000).execute(query)
        for sid, start, end, who, dev, os, addr, state, access, ev, retry in result:
            yield {
                "session": sid,
                "started": _iso(start),
                "ended": _iso(end),
                "identity": who,
                "device": dev,
                "os": os,
                "address": addr,
                "state": state,
                "access": access,
                "evaluation": ev,
                "retry": bool(retry),
            }

    return Report(
        name="sessions",
        title="Sessions",
        figures={
            "sessions": sum(counts.values()),
            **{f"state_{k}": v for k, v in sorted(counts.items())},
        },
        sections=[
            Section(
                "sessions",
                "Sessions",
                [
                    "session",
                    "started",
                    "ended",
                    "identity",
                    "device",
                    "os",
                    "address",
                    "state",
                    "access",
                    "evaluation",
                    "retry",
                ],
                rows(),
                empty="no sessions in this period",
            )
        ],
    )


# --------------------------------------------------------------------------- noncompliant


def noncompliant_report(conn: Connection, window: Window) -> Report:
    latest = _latest_decided(window)
    rows = conn.execute(
        select(
            S.c.id,
            D.c.value,
            ID.c.name,
            PR.c.name,
            S.c.address,
            S.c.started_at,
            S.c.recommendation,
            S.c.evaluation,
            S.c.reasons,
        )
        .select_from(
            latest.join(S, S.c.id == latest.c.sid)
            .join(D, D.c.id == latest.c.device_id)
            .outerjoin(ID, ID.c.id == S.c.identity_id)
            .outerjoin(PR, PR.c.id == S.c.product_id)
        )
        .where(S.c.recommendation != "allow")
        .order_by(D.c.value)
    ).all()
    out: dict[int, dict[str, Any]] = {}
    for sid, dev, who, os, addr, at, rec, ev, reasons in rows:
        out[sid] = {
            "device": dev,
            "identity": who,
            "os": os,
            "address": addr,
            "last_seen": _iso(at),
            "recommendation": rec,
            "evaluation": ev,
            "session": sid,
            "why": [],
            "remediation": [],
            "reasons": "; ".join(f"{k}: {v}" for k, v in json.loads(reasons or "{}").items()),
        }
    for chunk in _chunks(list(out), 500):
        for sid, policy, outcome, rec, reason, remedy in conn.execute(
            select(
                R.c.session_id,
                P.c.name,
                R.c.outcome,
                R.c.recommendation,
                R.c.reason,
                R.c.remediation,
            )
            .join_from(R, P, P.c.id == R.c.policy_id)
            .where(
                R.c.session_id.in_(chunk),
                R.c.outcome.in_(_NOT_PASSED),
                R.c.recommendation != "allow",
            )
            .order_by(R.c.session_id, R.c.id)
        ):
            entry = out[sid]
            text = f"{policy} {outcome.replace('_', ' ')} -> {rec}"
            entry["why"].append(f"{text}: {reason}" if reason else text)
            for item in json.loads(remedy or "[]"):
                if item not in entry["remediation"]:
                    entry["remediation"].append(item)
        for sid, uri, text in conn.execute(
            select(RM.c.session_id, RM.c.uri, RM.c.text)
            .where(RM.c.session_id.in_(chunk))
            .order_by(RM.c.session_id, RM.c.id)
        ):
            for item in (uri, text):
                if item and item not in out[sid]["remediation"]:
                    out[sid]["remediation"].append(item)
    result = []
    for entry in out.values():
        if not entry["why"] and entry["reasons"]:
            entry["why"] = [entry["reasons"]]
        entry["why"] = "; ".join(entry["why"])
        entry["remediation"] = "; ".join(entry["remediation"])
        entry["remediation_sent"] = bool(entry["remediation"])
        result.append(entry)
    ok, assessed, rate = compliance(conn, window)
    return Report(
        name="noncompliant",
        title="Non-compliant endpoints (latest verdict not allow)",
        figures={
            "compliance_rate": rate,
            "compliant_devices": ok,
            "noncompliant_devices": len(result),
            "assessed_devices": assessed,
        },
        sections=[
            Section(
                "noncompliant",
                "Non-compliant endpoints",
                [
                    "device",
                    "identity",
                    "os",
                    "address",
                    "last_seen",
                    "recommendation",
                    "evaluation",
                    "why",
                    "remediation_sent",
                    "remediation",
                    "session",
                ],
                result,
                empty="every assessed endpoint is compliant",
            )
        ],
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
