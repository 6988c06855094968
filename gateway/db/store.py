"""The evidence store: writes the validators' records to SQL, answers ``last_compliant``.

:class:`EvidenceStore` is synchronous and single-threaded: :meth:`EvidenceStore.apply` writes a
batch of records (:mod:`nea.imv.evidence` types, plus :class:`AddressBound` and
:class:`PolicySync`) in one transaction, each record in its own savepoint, so a record that
cannot be written (logged and dropped) does not take the others with it. The gateway does
not call it from the reactor: :class:`gateway.db.sink.SqlEvidenceSink` queues the records
and a single writer thread applies them.

Consistency after a crash: the session row is committed with the first batch after the
handshake starts, facts and per-policy results as they arrive, the verdict with the
decision. A gateway killed mid-assessment leaves a session without a recommendation, which
the reports show as *interrupted*; nothing half-written is visible because every batch is one
transaction.

Connection ids are only unique within one gateway run, so the store maps each live PB-TNC
connection to its current session row in memory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from gateway.db.engine import DEFAULT_DB_URL, open_for_writing
from gateway.db.models import (
    ACCOUNTING_TABLE,
    DEVICES_TABLE,
    ENFORCEMENTS_TABLE,
    GROUPS_TABLE,
    IDENTITIES_TABLE,
    INVENTORIES_TABLE,
    ITEMS_TABLE,
    PACKAGES_TABLE,
    POLICIES_TABLE,
    PRODUCTS_TABLE,
    REMEDIATIONS_TABLE,
    RESULTS_TABLE,
    SESSIONS_TABLE,
    SOFTWARE_TABLE,
    VERSIONS_TABLE,
)
from nea.imv.evidence import (
    DeviceFacts,
    PolicyOutcome,
    PolicyResult,
    RemediationRecord,
    SessionDecision,
    SessionStart,
)
from nea.pb_tnc.imv import ActionRecommendation
from nea.pb_tnc.messages import AccessRecommendation, AssessmentResult

__all__ = [
    "ACCESS_NAMES",
    "EVALUATION_NAMES",
    "RECOMMENDATION_NAMES",
    "UNKNOWN_PRODUCT",
    "AccountingUpdate",
    "AddressBound",
    "EvidenceStore",
    "PolicySync",
    "SessionEnded",
]

log = logging.getLogger(__name__)


#: The policy file's words for the IF-IMV recommendations (what the database stores).
RECOMMENDATION_NAMES: Mapping[ActionRecommendation, str] = {
    ActionRecommendation.ALLOW: "allow",
    ActionRecommendation.ISOLATE: "isolate",
    ActionRecommendation.NO_ACCESS: "block",
    ActionRecommendation.NO_RECOMMENDATION: "none",
}
ACCESS_NAMES: Mapping[AccessRecommendation, str] = {
    AccessRecommendation.ALLOWED: "allowed",
    AccessRecommendation.QUARANTINED: "quarantined",
    AccessRecommendation.DENIED: "denied",
}
EVALUATION_NAMES: Mapping[AssessmentResult, str] = {
    AssessmentResult.COMPLIANT: "compliant",
    AssessmentResult.NONCOMPLIANT_MINOR: "noncompliant_minor",
    AssessmentResult.NONCOMPLIANT_MAJOR: "noncompliant_major",
    AssessmentResult.ERROR: "error",
    AssessmentResult.DONT_KNOW: "dont_know",
}

#: Product name for package versions of an endpoint that did not name its OS.
UNKNOWN_PRODUCT = "(unknown)"


@dataclass(frozen=True, slots=True)
class AddressBound:
    """The gateway tells which outer address a connection comes from (IKE peer address,
    RADIUS Calling-Station-Id, PT-TLS peer); may come before or after the session start."""

    connection_id: int
    address: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The connection is gone (:meth:`EvidenceSink.session_ended`)."""

    connection_id: int
    at: _dt.datetime


@dataclass(frozen=True, slots=True)
class AccountingUpdate:
    """A RADIUS accounting session (RFC 2866) as of its latest record: a Start, an
    Interim-Update or a Stop (``stopped_at`` set).  Rows are keyed by ``nas`` and
    ``acct_session_id``: a record for a session with an open row updates that row, otherwise
    it opens a new one (a NAS may reuse an Acct-Session-Id after a Stop).

    ``connection_id`` ties the session to a posture connection; the row then names that
    connection's current evidence session (``nea_accounting.session_id``)."""

    nas: str
    acct_session_id: str
    started_at: _dt.datetime
    updated_at: _dt.datetime
    stopped_at: _dt.datetime | None = None
    connection_id: int | None = None
    nas_address: str | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    framed_ip: str | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    input_packets: int | None = None
    output_packets: int | None = None
    duration: int | None = None
    """Seconds (Acct-Session-Time, else the span between the records)."""
    terminate_cause: int | None = None


@dataclass(frozen=True, slots=True)
class PolicySync:
    """Upsert the policy file's groups, policies and enforcements (see
    :meth:`EvidenceStore.sync_policy`)."""

    config: Any


Record = (
    SessionStart
    | DeviceFacts
    | PolicyResult
    | RemediationRecord
    | SessionDecision
    | SessionEnded
    | AddressBound
    | AccountingUpdate
    | PolicySync
)


@dataclass(frozen=True, slots=True)
class _Current:
    session_id: int
    device_id: int | None = None
    product_id: int | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    device_value: str | None = None


@dataclass(frozen=True, slots=True)
class _Ended:
    session_id: int
    """The connection's latest session."""
    address: str | None
    """Its address when it ended."""
    late: str | None = None
    """An address bound after the end."""


_SCALAR_FACTS = (
    "product",
    "product_vendor_id",
    "product_id",
    "version",
    "numeric_version",
    "operational_status",
    "operational_result",
    "last_use",
    "forwarding",
    "default_password",
    "ports",
)


# Statements built once: executing them with a parameter dict skips building and compiling a
# statement per record (the writer's hot path).
_INSERT_SESSION = SESSIONS_TABLE.insert().returning(SESSIONS_TABLE.c.id)
_UPDATE_SESSION = update(SESSIONS_TABLE).where(SESSIONS_TABLE.c.id == bindparam("_sid"))
_INSERT_RESULT = RESULTS_TABLE.insert()
_INSERT_REMEDIATION = REMEDIATIONS_TABLE.insert()
_TOUCH_DEVICE = (
    update(DEVICES_TABLE)
    .where(DEVICES_TABLE.c.id == bindparam("_did"), DEVICES_TABLE.c.last_seen < bindparam("_at"))
    .values(last_seen=bindparam("_at"))
)


def _update_session(conn: Connection, session_id: int, **values: Any) -> None:
    conn.execute(_UPDATE_SESSION, {"_sid": session_id, **values})


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _rec_name(rec: ActionRecommendation | None) -> str | None:
    return None if rec is None else RECOMMENDATION_NAMES[ActionRecommendation(rec)]


class EvidenceStore:
    """SQL evidence store (SQLite by default, PostgreSQL by URL).

    ``EvidenceStore(url)`` opens (and creates or upgrades) the database; ``engine=`` hands in
    an engine instead (then the schema is not touched)."""

    def __init__(self, url: str = DEFAULT_DB_URL, *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else open_for_writing(url)
        self._ids: dict[tuple[str, Any], int] = {}
        self.id_cache_size = 100_000
        """Name -> row id cache entries (identities, devices, policies ...) kept at most."""
        self._current: dict[int, _Current] = {}
        self._open: dict[int, list[int]] = {}
        self._addresses: dict[int, str] = {}
        self._accounting_rows: dict[tuple[str, str], int] = {}
        """(NAS, Acct-Session-Id) -> row id of the open accounting session."""
        self._ended_sessions: OrderedDict[int, _Ended] = OrderedDict()
        """Recently ended connections (oldest first) -> their latest session, so that an
        address bound after the end still reaches it (see :meth:`_address`)."""
        self.ended_cache_size = 4096
        """Ended connections remembered at most."""

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writing

    def apply(self, records: Iterable[Record]) -> int:
        """Write ``records`` in one transaction; returns how many could not be written.

        If the database is unavailable (connection lost, locked, disk full: a DBAPI
        OperationalError/InterfaceError or an OSError) the transaction is rolled back, the
        in-memory state restored and the exception propagates: the caller may retry the same
        batch. If a record is refused (a constraint, a value out of range, a bug), the batch
        is written again record by record, each in its own transaction, and the refused ones
        are logged and dropped."""
        batch = list(records)
        saved = self._snapshot()
        try:
            with self.engine.begin() as conn:
                for record in batch:
                    self._apply_one(conn, record)
            return 0
        except Exception as exc:
            self._restore(saved)
            if _unavailable(exc):
                raise
        failed = 0
        for index, record in enumerate(batch):
            saved = self._snapshot()
            try:
                with self.engine.begin() as conn:
                    self._apply_one(conn, record)
            except Exception as exc:
                self._restore(saved)
                if _unavailable(exc):  # gone in the middle: the rest cannot be written
                    log.error(
                        "evidence: database unavailable, dropping %d records: %s",
                        len(batch) - index,
                        exc,
                    )
                    return failed + len(batch) - index
                failed += 1
                log.exception("evidence: could not store %s", type(record).__name__)
        return failed

    def _snapshot(self) -> tuple[Any, ...]:
        return (
            dict(self._current),
            {k: list(v) for k, v in self._open.items()},
            dict(self._addresses),
            dict(self._accounting_rows),
            OrderedDict(self._ended_sessions),
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        self._ids.clear()  # may name rows of the rolled-back transaction
        (
            self._current,
            self._open,
            self._addresses,
            self._accounting_rows,
            self._ended_sessions,
        ) = saved

    def _apply_one(self, conn: Connection, record: Record) -> None:
        if isinstance(record, SessionStart):
            self._session_started(conn, record)
        elif isinstance(record, DeviceFacts):
            self._facts(conn, record)
        elif isinstance(record, PolicyResult):
            self._result(conn, record)
        elif isinstance(record, RemediationRecord):
            self._remediation(conn, record)
        elif isinstance(record, SessionDecision):
            self._decision(conn, record)
        elif isinstance(record, SessionEnded):
            self._ended(conn, record)
        elif isinstance(record, AddressBound):
            self._address(conn, record)
        elif isinstance(record, AccountingUpdate):
            self._accounting(conn, record)
        elif isinstance(record, PolicySync):
            self._sync_policy(conn, record.config)
        else:
            raise TypeError(f"not an evidence record: {record!r}")

    # convenience wrappers: one record, one transaction (tests, tools)

    def session_started(self, start: SessionStart) -> None:
        self.apply([start])

    def facts_measured(self, facts: DeviceFacts) -> None:
        self.apply([facts])

    def policy_result(self, result: PolicyResult) -> None:
        self.apply([result])

    def remediation_sent(self, record: RemediationRecord) -> None:
        self.apply([record])

    def session_decided(self, decision: SessionDecision) -> None:
        self.apply([decision])

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None:
        self.apply([SessionEnded(connection_id, at)])

    def accounting(self, acct: AccountingUpdate) -> None:
        self.apply([acct])

    def bind_address(self, connection_id: int, address: str) -> None:
        self.apply([AddressBound(connection_id, address)])

    def sync_policy(self, config: Any) -> None:
        """Upsert the groups, policies and enforcements of a ``nea.policy.PolicyConfig``
        (anything with ``groups`` and ``policies`` mappings and an ``enforcements``
        sequence of those shapes). Rows that left the file stay (results refer to them) but
        are marked inactive."""
        with self.engine.begin() as conn:
            self._sync_policy(conn, config)

    # ------------------------------------------------------------------ id cache

    def _get_id(
        self,
        conn: Connection,
        table: Table,
        key: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        cache_key = (table.name, tuple(key.items()))
        found = self._ids.get(cache_key)
        if found is not None:
            return found
        where = [table.c[k] == v for k, v in key.items()]
        row = conn.execute(select(table.c.id).where(*where)).scalar()
        if row is None:
            conn.execute(
                _insert(conn, table).values(**key, **(extra or {})).on_conflict_do_nothing()
            )
            row = conn.execute(select(table.c.id).where(*where)).scalar_one()
        if len(self._ids) >= self.id_cache_size:
            self._ids.clear()  # bounded memory; ids are looked up again as needed
        self._ids[cache_key] = int(row)
        return int(row)

    def _identity(self, conn: Connection, name: str | None) -> int | None:
        if not name:
            return None
        return self._get_id(conn, IDENTITIES_TABLE, {"name": name[:1024]})

    def _device(self, conn: Connection, value: str | None, at: _dt.datetime) -> int | None:
        if not value:
            return None
        table = DEVICES_TABLE
        device = self._get_id(
            conn, table, {"value": value[:255]}, {"first_seen": at, "last_seen": at}
        )
        conn.execute(_TOUCH_DEVICE, {"_did": device, "_at": at})
        return device

    def _product(
        self, conn: Connection, name: str, vendor: int | None = None, product: int | None = None
    ) -> int:
        return self._get_id(
            conn, PRODUCTS_TABLE, {"name": name[:255]}, {"vendor_id": vendor, "product_id": product}
        )

    def _policy(self, conn: Connection, name: str, policy_type: str = "") -> int:
        return self._get_id(
            conn,
            POLICIES_TABLE,
            {"name": name[:255]},
            {"type": policy_type[:16], "argument": "", "reason": "", "active": True},
        )

    def _group(self, conn: Connection, name: str) -> int:
        return self._get_id(
            conn,
            GROUPS_TABLE,
            {"name": name[:255]},
            {"description": "", "criteria": "{}", "active": True},
        )

    # ------------------------------------------------------------------ sessions

    def _new_session(
        self,
        conn: Connection,
        connection_id: int,
        at: _dt.datetime,
        identity: str | None,
        retry: bool,
    ) -> _Current:
        previous = self._current.get(connection_id)
        session_id = conn.execute(
            _INSERT_SESSION,
            {
                "connection_id": connection_id,
                "started_at": at,
                "retry": retry,
                "identity_id": self._identity(conn, identity),
                "device_id": previous.device_id if previous else None,
                "product_id": previous.product_id if previous else None,
                "address": self._addresses.get(connection_id),
                "facts": "{}",
                "reasons": "{}",
                "validators": "{}",
            },
        ).scalar_one()
        current = _Current(
            int(session_id),
            previous.device_id if previous else None,
            previous.product_id if previous else None,
            device_value=previous.device_value if previous else None,
        )
        self._current[connection_id] = current
        self._open.setdefault(connection_id, []).append(current.session_id)
        return current

    def _session_for(
        self, conn: Connection, connection_id: int, at: _dt.datetime, identity: str | None
    ) -> _Current:
        """The connection's current session; a record without a start opens one."""
        current = self._current.get(connection_id)
        if current is None:
            log.warning("evidence: record for connection %d without a session start", connection_id)
            current = self._new_session(conn, connection_id, at, identity, retry=False)
        return current

    def _session_started(self, conn: Connection, start: SessionStart) -> None:
        ended = self._ended_sessions.pop(start.connection_id, None)
        if ended is not None and ended.late is not None:
            # The connection id is in use again (another gateway run writing through this
            # store): the bind that came after the end was this new session's.
            _update_session(conn, ended.session_id, address=ended.address)
            self._addresses.setdefault(start.connection_id, ended.late)
        if start.address:
            self._addresses[start.connection_id] = start.address[:64]
        self._new_session(conn, start.connection_id, start.at, start.identity, start.retry)

    def _address(self, conn: Connection, bound: AddressBound) -> None:
        address = bound.address[:64]
        ended = self._ended_sessions.get(bound.connection_id)
        if ended is not None:
            # After the end (IKEv2: PT-EAP is over inside IKE_AUTH, the virtual IP is known
            # once the IKE_SA is up): the connection's latest session takes it.
            self._ended_sessions[bound.connection_id] = replace(ended, late=address)
            _update_session(conn, ended.session_id, address=address)
            return
        self._addresses[bound.connection_id] = address
        current = self._current.get(bound.connection_id)
        if current is not None:
            _update_session(conn, current.session_id, address=address)

    def _bind_device(
        self,
        conn: Connection,
        connection_id: int,
        current: _Current,
        device_value: str | None,
        at: _dt.datetime,
    ) -> _Current:
        if not device_value or device_value == current.device_value:
            return current
        device = self._device(conn, device_value, at)
        current = replace(current, device_value=device_value)
        if device != current.device_id:
            current = replace(current, device_id=device)
            _update_session(conn, current.session_id, device_id=device)
            if current.product_id is not None and device is not None:
                self._set_device_product(conn, device, current.product_id)
        self._current[connection_id] = current
        return current

    def _set_device_product(self, conn: Connection, device: int, product: int) -> None:
        table = DEVICES_TABLE
        conn.execute(update(table).where(table.c.id == device).values(product_id=product))

    def _facts(self, conn: Connection, facts: DeviceFacts) -> None:
        current = self._session_for(conn, facts.connection_id, facts.at, None)
        current = self._bind_device(conn, facts.connection_id, current, facts.device_id, facts.at)
        merged = dict(current.facts)
        for name in _SCALAR_FACTS:
            value = getattr(facts, name)
            if value is not None:
                merged[name] = list(value) if isinstance(value, tuple) else value
        values: dict[str, Any] = {"facts": _json(merged)}
        product = current.product_id
        label = DeviceFacts(
            0, facts.at, product=merged.get("product"), version=merged.get("version")
        ).os_label
        if label is not None:
            product = self._product(
                conn, label, merged.get("product_vendor_id"), merged.get("product_id")
            )
            if product != current.product_id:
                values["product_id"] = product
                if current.device_id is not None:
                    self._set_device_product(conn, current.device_id, product)
        if facts.packages is not None:
            values["packages_inventory_id"] = self._packages(
                conn, current.device_id, product, facts.packages, facts.at
            )
        if facts.software is not None:
            values["swima_inventory_id"] = self._software(
                conn, current.device_id, facts.software, facts.at
            )
        _update_session(conn, current.session_id, **values)
        self._current[facts.connection_id] = replace(current, facts=merged, product_id=product)

    def _inventory(
        self,
        conn: Connection,
        device: int | None,
        kind: str,
        digest: str,
        count: int,
        at: _dt.datetime,
    ) -> tuple[int, bool]:
        """(inventory id, created): the device's latest inventory of ``kind`` when it has the
        same content, else a new one."""
        inv = INVENTORIES_TABLE
        if device is not None:
            latest = conn.execute(
                select(inv.c.id, inv.c.digest)
                .where(inv.c.device_id == device, inv.c.kind == kind)
                .order_by(inv.c.id.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.digest == digest:
                return int(latest.id), False
        new = conn.execute(
            inv.insert()
            .values(device_id=device, kind=kind, digest=digest, count=count, first_seen=at)
            .returning(inv.c.id)
        ).scalar_one()
        return int(new), True

    def _packages(
        self,
        conn: Connection,
        device: int | None,
        product: int | None,
        packages: Sequence[tuple[str, str]],
        at: _dt.datetime,
    ) -> int:
        items = sorted({(n[:255], v[:255]) for n, v in packages})
        digest = hashlib.sha256(_json(items).encode()).hexdigest()
        inventory, created = self._inventory(conn, device, "packages", digest, len(items), at)
        if not created or not items:
            return inventory
        if product is None:
            product = self._product(conn, UNKNOWN_PRODUCT)
        pkg = PACKAGES_TABLE
        ver = VERSIONS_TABLE
        names = sorted({n for n, _ in items})
        pkg_ids: dict[str, int] = {}
        for chunk in _chunks(names, 500):
            conn.execute(_insert(conn, pkg).on_conflict_do_nothing(), [{"name": n} for n in chunk])
            pkg_ids.update(
                conn.execute(select(pkg.c.name, pkg.c.id).where(pkg.c.name.in_(chunk))).all()
            )
        wanted = [
            {"package_id": pkg_ids[n], "product_id": product, "release": v, "first_seen": at}
            for n, v in items
        ]
        ver_ids: dict[tuple[int, str], int] = {}
        for chunk in _chunks(wanted, 500):
            conn.execute(_insert(conn, ver).on_conflict_do_nothing(), chunk)
            ids = {row["package_id"] for row in chunk}
            rows = conn.execute(
                select(ver.c.package_id, ver.c.release, ver.c.id).where(
                    ver.c.product_id == product, ver.c.package_id.in_(ids)
                )
            )
            ver_ids.update({(p, r): i for p, r, i in rows})
        item = ITEMS_TABLE
        conn.execute(
            item.insert(),
            [
                {
                    "inventory_id": inventory,
                    "version_id": ver_ids[(pkg_ids[n], v)],
                    "software_id": None,
                }
                for n, v in items
            ],
        )
        return inventory

    def _software(
        self, conn: Connection, device: int | None, software: Sequence[str], at: _dt.datetime
    ) -> int:
        items = sorted({s[:1024] for s in software})
        digest = hashlib.sha256(_json(items).encode()).hexdigest()
        inventory, created = self._inventory(conn, device, "swima", digest, len(items), at)
        if not created or not items:
            return inventory
        sw = SOFTWARE_TABLE
        ids: dict[str, int] = {}
        for chunk in _chunks(items, 500):
            conn.execute(
                _insert(conn, sw).on_conflict_do_nothing(), [{"identifier": s} for s in chunk]
            )
            ids.update(
                conn.execute(
                    select(sw.c.identifier, sw.c.id).where(sw.c.identifier.in_(chunk))
                ).all()
            )
        item = ITEMS_TABLE
        conn.execute(
            item.insert(),
            [{"inventory_id": inventory, "version_id": None, "software_id": ids[s]} for s in items],
        )
        return inventory

    def _result(self, conn: Connection, result: PolicyResult) -> None:
        current = self._session_for(conn, result.connection_id, result.at, result.identity)
        current = self._bind_device(
            conn, result.connection_id, current, result.device_id, result.at
        )
        conn.execute(
            _INSERT_RESULT,
            {
                "session_id": current.session_id,
                "device_id": current.device_id,
                "policy_id": self._policy(conn, result.policy, result.policy_type),
                "group_id": self._group(conn, result.group) if result.group else None,
                "outcome": PolicyOutcome(result.outcome).value,
                "recommendation": _rec_name(result.recommendation),
                "evaluation": EVALUATION_NAMES[AssessmentResult(result.evaluation)],
                "at": result.at,
                "evidence": _json(dict(result.evidence)),
                "reason": result.reason,
                "remediation": _json(list(result.remediation)),
                "validator": result.validator[:64],
            },
        )

    def _remediation(self, conn: Connection, record: RemediationRecord) -> None:
        current = self._session_for(conn, record.connection_id, record.at, record.identity)
        current = self._bind_device(
            conn, record.connection_id, current, record.device_id, record.at
        )
        conn.execute(
            _INSERT_REMEDIATION,
            {
                "session_id": current.session_id,
                "policy_id": self._policy(conn, record.policy) if record.policy else None,
                "validator": record.validator[:64],
                "uri": record.uri,
                "text": record.text,
                "language": record.language[:32],
                "at": record.at,
            },
        )

    def _decision(self, conn: Connection, decision: SessionDecision) -> None:
        current = self._session_for(conn, decision.connection_id, decision.at, decision.identity)
        current = self._bind_device(
            conn, decision.connection_id, current, decision.device_id, decision.at
        )
        values: dict[str, Any] = {
            "decided_at": decision.at,
            "recommendation": _rec_name(decision.recommendation),
            "access": ACCESS_NAMES[AccessRecommendation(decision.access)],
            "evaluation": EVALUATION_NAMES[AssessmentResult(decision.evaluation)],
            "reasons": _json(dict(decision.reasons)),
            "validators": _json(
                {
                    name: [_rec_name(rec), EVALUATION_NAMES[AssessmentResult(ev)]]
                    for name, (rec, ev) in decision.per_validator.items()
                }
            ),
        }
        if decision.identity:
            values["identity_id"] = self._identity(conn, decision.identity)
        _update_session(conn, current.session_id, **values)
        if current.device_id is not None:
            conn.execute(_TOUCH_DEVICE, {"_did": current.device_id, "_at": decision.at})

    def _ended(self, conn: Connection, ended: SessionEnded) -> None:
        ids = self._open.pop(ended.connection_id, [])
        current = self._current.pop(ended.connection_id, None)
        address = self._addresses.pop(ended.connection_id, None)
        if current is not None:
            remembered = self._ended_sessions
            remembered.pop(ended.connection_id, None)
            remembered[ended.connection_id] = _Ended(current.session_id, address)
            while len(remembered) > self.ended_cache_size:
                remembered.popitem(last=False)
        if ids:
            table = SESSIONS_TABLE
            conn.execute(
                update(table)
                .where(table.c.id.in_(ids), table.c.ended_at.is_(None))
                .values(ended_at=ended.at)
            )

    # ------------------------------------------------------------------ accounting

    def _accounting(self, conn: Connection, acct: AccountingUpdate) -> None:
        table = ACCOUNTING_TABLE
        key = (acct.nas[:255], acct.acct_session_id[:255])
        values: dict[str, Any] = {
            "updated_at": acct.updated_at,
            "stopped_at": acct.stopped_at,
            "nas_address": _cut(acct.nas_address, 64),
            "user_name": _cut(acct.user_name, 255),
            "calling_station_id": _cut(acct.calling_station_id, 255),
            "framed_ip": _cut(acct.framed_ip, 64),
            "input_octets": acct.input_octets,
            "output_octets": acct.output_octets,
            "input_packets": acct.input_packets,
            "output_packets": acct.output_packets,
            "duration": acct.duration,
            "terminate_cause": acct.terminate_cause,
        }
        if acct.connection_id is not None:
            values["connection_id"] = acct.connection_id
            current = self._current.get(acct.connection_id)
            if current is not None:
                values["session_id"] = current.session_id
        row = self._accounting_rows.get(key)
        if row is None:
            # not seen in this run: continue an open row a previous run left behind
            row = conn.execute(
                select(table.c.id)
                .where(
                    table.c.nas == key[0],
                    table.c.acct_session_id == key[1],
                    table.c.stopped_at.is_(None),
                )
                .order_by(table.c.id.desc())
                .limit(1)
            ).scalar()
        if row is None:
            row = conn.execute(
                table.insert().returning(table.c.id),
                {
                    "nas": key[0],
                    "acct_session_id": key[1],
                    "started_at": acct.started_at,
                    **values,
                },
            ).scalar_one()
        else:
            # what this record does not say, an earlier one may have (a restarted recorder)
            known = {k: v for k, v in values.items() if v is not None}
            conn.execute(update(table).where(table.c.id == row).values(**known))
        if acct.stopped_at is None:
            self._accounting_rows[key] = int(row)
        else:
            self._accounting_rows.pop(key, None)

    # ------------------------------------------------------------------ policy

    def _sync_policy(self, conn: Connection, config: Any) -> None:
        groups = GROUPS_TABLE
        policies = POLICIES_TABLE
        enforcements = ENFORCEMENTS_TABLE
        self._ids.clear()  # ids of renamed/updated rows are looked up again

        def upsert(table: Table, key: dict[str, Any], values: dict[str, Any]) -> int:
            stmt = _insert(conn, table).values(**key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))
            where = [table.c[k] == v for k, v in key.items()]
            return int(conn.execute(select(table.c.id).where(*where)).scalar_one())

        group_ids: dict[str, int] = {}
        for name, group in config.groups.items():
            criteria = {
                "identities": list(group.identities),
                "products": list(group.products),
                "device_ids": list(group.device_ids),
            }
            group_ids[name] = upsert(
                groups,
                {"name": name},
                {
                    "description": getattr(group, "description", "") or "",
                    "criteria": _json(criteria),
                    "active": True,
                },
            )
        for name, group in config.groups.items():
            parent = group_ids.get(group.parent) if group.parent else None
            if group.parent and parent is None:
                parent = upsert(
                    groups,
                    {"name": group.parent},
                    {"description": "", "criteria": "{}", "active": False},
                )
            conn.execute(
                update(groups).where(groups.c.id == group_ids[name]).values(parent_id=parent)
            )
        conn.execute(
            update(groups).where(groups.c.name.not_in(list(group_ids) or [""])).values(active=False)
        )

        policy_ids: dict[str, int] = {}
        for name, policy in config.policies.items():
            reason = dict(policy.reason)
            policy_ids[name] = upsert(
                policies,
                {"name": name},
                {
                    "type": getattr(policy.type, "value", str(policy.type)),
                    "argument": policy.argument,
                    "rec_fail": _rec_name(policy.rec_fail),
                    "rec_noresult": _rec_name(policy.rec_noresult),
                    "reason": reason.get("en") or next(iter(reason.values()), ""),
                    "remediation_uri": policy.remediation_uri,
                    "active": True,
                },
            )
        conn.execute(
            update(policies)
            .where(policies.c.name.not_in(list(policy_ids) or [""]))
            .values(active=False)
        )

        kept: list[int] = []
        for enf in config.enforcements:
            policy_id = policy_ids.get(enf.policy) or self._policy(conn, enf.policy)
            group_id = group_ids.get(enf.group) or self._group(conn, enf.group)
            max_age = enf.max_age
            kept.append(
                upsert(
                    enforcements,
                    {"policy_id": policy_id, "group_id": group_id},
                    {
                        "max_age": None if max_age is None else int(max_age.total_seconds()),
                        "rec_fail": _rec_name(enf.rec_fail),
                        "rec_noresult": _rec_name(enf.rec_noresult),
                        "active": True,
                    },
                )
            )
        conn.execute(
            update(enforcements).where(enforcements.c.id.not_in(kept or [-1])).values(active=False)
        )

    # ------------------------------------------------------------------ reading

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        """When ``device_id`` last passed ``policy`` (a measured pass, not a skip)."""
        r, d, p = RESULTS_TABLE, DEVICES_TABLE, POLICIES_TABLE
        query = (
            select(func.max(r.c.at))
            .join_from(r, d, r.c.device_id == d.c.id)
            .join(p, r.c.policy_id == p.c.id)
            .where(
                d.c.value == device_id,
                p.c.name == policy,
                r.c.outcome == PolicyOutcome.PASSED.value,
            )
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return _aware(value)

    def compliant_since(self, since: _dt.datetime) -> dict[tuple[str, str], _dt.datetime]:
        """(device id, policy name) -> last measured pass, for passes since ``since`` (one
        aggregate query; the threaded sink preloads its ``last_compliant`` cache with it)."""
        r, d, p = RESULTS_TABLE, DEVICES_TABLE, POLICIES_TABLE
        query = (
            select(d.c.value, p.c.name, func.max(r.c.at))
            .join_from(r, d, r.c.device_id == d.c.id)
            .join(p, r.c.policy_id == p.c.id)
            .where(r.c.outcome == PolicyOutcome.PASSED.value, r.c.at >= since)
            .group_by(d.c.value, p.c.name)
        )
        with self.engine.connect() as conn:
            out: dict[tuple[str, str], _dt.datetime] = {}
            for device, policy, at in conn.execute(query):
                aware = _aware(at)
                if aware is not None:
                    out[(device, policy)] = aware
            return out


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def _unavailable(exc: BaseException) -> bool:
    """The database could not be used at all (as opposed to refusing one record)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _aware(value: Any) -> _dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite aggregate over a TypeDecorator column
        value = _dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value  # type: ignore[no-any-return]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
