"""The evidence database: SQLAlchemy 2 declarative models.

Every table name starts with ``nea_`` so the evidence can share one database with the SQL
pools (which own ``pools``, ``identities``, ``addresses``, ...). Times are stored as naive UTC
(:class:`UtcDateTime` hands back aware UTC datetimes), so ``date(started_at)`` is the UTC day
on SQLite and PostgreSQL alike.

Tables (strongTNC's vocabulary where there is one):

* ``nea_products`` -- an OS as the endpoint names it ("Debian 12 x86_64").
* ``nea_packages``, ``nea_versions`` -- installed package names and the (package, product,
  release) versions seen on endpoints.
* ``nea_software`` -- SWIMA software identifiers.
* ``nea_inventories``, ``nea_inventory_items`` -- a device's installed packages or SWIMA
  inventory; a session reuses the device's previous inventory when nothing changed.
* ``nea_identities`` -- authenticated user/machine identities.
* ``nea_devices`` -- endpoints by their device id (ITA Device ID, SWIMA instance, ...).
* ``nea_groups``, ``nea_policies``, ``nea_enforcements`` -- the policy file, kept in sync by
  :meth:`gateway.db.EvidenceStore.sync_policy`; rows are never deleted (results refer to
  them), a policy or enforcement that left the file is marked ``active = false``.
* ``nea_sessions`` -- one assessment (PB-TNC handshake): start, end, identity, device,
  address, the facts the endpoint reported and the final recommendation. A session with no
  recommendation is *interrupted* (the connection ended, or the gateway died, before a
  verdict); it is never lost because the row is committed when the handshake starts.
* ``nea_results`` -- per-policy results of a session with the evidence they rest on.
* ``nea_remediations`` -- remediation instructions sent to the endpoint.
* ``nea_accounting`` -- RADIUS accounting sessions (RFC 2866): NAS, Acct-Session-Id, octets,
  packets, duration and terminate cause, tied to the posture session when the gateway knows
  the connection (:class:`gateway.radius.accounting.EvidenceAccountingSink`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACCOUNTING_TABLE",
    "DEVICES_TABLE",
    "ENFORCEMENTS_TABLE",
    "GROUPS_TABLE",
    "IDENTITIES_TABLE",
    "INVENTORIES_TABLE",
    "ITEMS_TABLE",
    "PACKAGES_TABLE",
    "POLICIES_TABLE",
    "PRODUCTS_TABLE",
    "REMEDIATIONS_TABLE",
    "RESULTS_TABLE",
    "SESSIONS_TABLE",
    "SOFTWARE_TABLE",
    "VERSIONS_TABLE",
    "VERSION_TABLE",
    "Base",
    "Device",
    "Enforcement",
    "Group",
    "Identity",
    "Inventory",
    "InventoryItem",
    "Package",
    "Policy",
    "Product",
    "RadiusAccounting",
    "Remediation",
    "Result",
    "Session",
    "Software",
    "UtcDateTime",
    "Version",
    "metadata",
]

#: Alembic version table of the evidence schema (the pools keep their own).
VERSION_TABLE = "nea_evidence_alembic_version"

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[_dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, _dt.datetime) and value.tzinfo is not None:
            return value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, _dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=_dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData()


metadata = Base.metadata


class Product(Base):
    __tablename__ = "nea_products"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vendor_id: Mapped[int | None] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(Integer)


class Package(Base):
    __tablename__ = "nea_packages"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)


class Version(Base):
    __tablename__ = "nea_versions"
    __table_args__ = (
        UniqueConstraint("package_id", "product_id", "release", name="uq_nea_versions"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    package_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_packages.id"))
    product_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_products.id"))
    release: Mapped[str] = mapped_column(String(255))
    first_seen: Mapped[_dt.datetime] = mapped_column(UtcDateTime)


class Software(Base):
    __tablename__ = "nea_software"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(String(1024), unique=True)


class Identity(Base):
    __tablename__ = "nea_identities"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(1024), unique=True)


class Device(Base):
    __tablename__ = "nea_devices"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    value: Mapped[str] = mapped_column(String(255), unique=True)
    """The device id the endpoint reported."""
    product_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_products.id"))
    first_seen: Mapped[_dt.datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[_dt.datetime] = mapped_column(UtcDateTime)


class Group(Base):
    __tablename__ = "nea_groups"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    parent_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_groups.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    criteria: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: identities / products / device_ids globs."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Policy(Base):
    __tablename__ = "nea_policies"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    argument: Mapped[str] = mapped_column(Text, default="")
    rec_fail: Mapped[str | None] = mapped_column(String(16))
    rec_noresult: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    remediation_uri: Mapped[str | None] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Enforcement(Base):
    __tablename__ = "nea_enforcements"
    __table_args__ = (UniqueConstraint("policy_id", "group_id", name="uq_nea_enforcements"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    policy_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_policies.id"))
    group_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_groups.id"))
    max_age: Mapped[int | None] = mapped_column(BigInteger)
    """Seconds."""
    rec_fail: Mapped[str | None] = mapped_column(String(16))
    rec_noresult: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Inventory(Base):
    __tablename__ = "nea_inventories"
    __table_args__ = (Index("ix_nea_inventories_device", "device_id", "kind", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    device_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_devices.id"))
    kind: Mapped[str] = mapped_column(String(16))
    """``packages`` or ``swima``."""
    digest: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[_dt.datetime] = mapped_column(UtcDateTime)


class InventoryItem(Base):
    __tablename__ = "nea_inventory_items"
    __table_args__ = (Index("ix_nea_inventory_items_inventory", "inventory_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    inventory_id: Mapped[int] = mapped_column(
        Id, ForeignKey("nea_inventories.id", ondelete="CASCADE")
    )
    version_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_versions.id"))
    software_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_software.id"))


class Session(Base):
    __tablename__ = "nea_sessions"
    __table_args__ = (
        Index("ix_nea_sessions_started", "started_at"),
        Index("ix_nea_sessions_device", "device_id", "id"),
        Index("ix_nea_sessions_identity", "identity_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(BigInteger)
    """The PB-TNC connection id (unique only within one gateway run)."""
    started_at: Mapped[_dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[_dt.datetime | None] = mapped_column(UtcDateTime)
    retry: Mapped[bool] = mapped_column(Boolean, default=False)
    identity_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_identities.id"))
    device_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_devices.id"))
    product_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_products.id"))
    address: Mapped[str | None] = mapped_column(String(64))
    """The address the gateway bound to the connection (``bind_address``): the endpoint's
    outer address or its virtual IP."""
    facts: Mapped[str] = mapped_column(Text, default="{}")
    """JSON of the scalar facts the endpoint reported (forwarding, default password, ...)."""
    packages_inventory_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_inventories.id"))
    swima_inventory_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_inventories.id"))
    decided_at: Mapped[_dt.datetime | None] = mapped_column(UtcDateTime)
    recommendation: Mapped[str | None] = mapped_column(String(16))
    """Final recommendation: ``allow``, ``isolate``, ``block`` or ``none``; NULL = no verdict."""
    access: Mapped[str | None] = mapped_column(String(16))
    """PB-Access-Recommendation: ``allowed``, ``quarantined``, ``denied``."""
    evaluation: Mapped[str | None] = mapped_column(String(24))
    reasons: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: reason string by validator."""
    validators: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: each validator's [recommendation, evaluation]."""


class Result(Base):
    __tablename__ = "nea_results"
    __table_args__ = (
        Index("ix_nea_results_session", "session_id"),
        Index("ix_nea_results_policy", "policy_id", "outcome"),
        Index("ix_nea_results_device_policy", "device_id", "policy_id", "outcome"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_sessions.id"))
    device_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_devices.id"))
    policy_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_policies.id"))
    group_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_groups.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    """``passed``, ``failed``, ``no_result``, ``skipped``."""
    recommendation: Mapped[str] = mapped_column(String(16))
    evaluation: Mapped[str] = mapped_column(String(24))
    at: Mapped[_dt.datetime] = mapped_column(UtcDateTime)
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    reason: Mapped[str] = mapped_column(Text, default="")
    remediation: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of the remediation instructions sent for this policy."""
    validator: Mapped[str] = mapped_column(String(64), default="")


class Remediation(Base):
    __tablename__ = "nea_remediations"
    __table_args__ = (Index("ix_nea_remediations_session", "session_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(Id, ForeignKey("nea_sessions.id"))
    policy_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_policies.id"))
    validator: Mapped[str] = mapped_column(String(64), default="")
    uri: Mapped[str | None] = mapped_column(String(1024))
    text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[_dt.datetime] = mapped_column(UtcDateTime)


class RadiusAccounting(Base):
    """One RADIUS accounting session (RFC 2866) as of its latest Accounting-Request."""

    __tablename__ = "nea_accounting"
    __table_args__ = (
        Index("ix_nea_accounting_key", "nas", "acct_session_id"),
        Index("ix_nea_accounting_started", "started_at"),
        Index("ix_nea_accounting_session", "session_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    nas: Mapped[str] = mapped_column(String(255))
    """NAS-Identifier, else NAS-IP-Address / NAS-IPv6-Address, else the request's source."""
    acct_session_id: Mapped[str] = mapped_column(String(255))
    """Acct-Session-Id (RFC 2866 section 5.5: unique per NAS; a NAS may reuse it after a
    Stop, which makes a new row)."""
    nas_address: Mapped[str | None] = mapped_column(String(64))
    """The address the Accounting-Request came from."""
    session_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nea_sessions.id"))
    """The posture session of the connection the gateway tied this session to, if any."""
    connection_id: Mapped[int | None] = mapped_column(BigInteger)
    user_name: Mapped[str | None] = mapped_column(String(255))
    calling_station_id: Mapped[str | None] = mapped_column(String(255))
    framed_ip: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[_dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[_dt.datetime] = mapped_column(UtcDateTime)
    stopped_at: Mapped[_dt.datetime | None] = mapped_column(UtcDateTime)
    input_octets: Mapped[int | None] = mapped_column(BigInteger)
    """Acct-Input-Octets plus Acct-Input-Gigawords * 2**32 (RFC 2869 section 5.1)."""
    output_octets: Mapped[int | None] = mapped_column(BigInteger)
    input_packets: Mapped[int | None] = mapped_column(BigInteger)
    output_packets: Mapped[int | None] = mapped_column(BigInteger)
    duration: Mapped[int | None] = mapped_column(BigInteger)
    """Seconds: Acct-Session-Time (RFC 2866 section 5.7), else the span of the records."""
    terminate_cause: Mapped[int | None] = mapped_column(Integer)
    """Acct-Terminate-Cause (RFC 2866 section 5.10)."""


# Core views of the tables (bulk inserts and aggregate queries use these).
ACCOUNTING_TABLE = cast(Table, RadiusAccounting.__table__)
DEVICES_TABLE = cast(Table, Device.__table__)
ENFORCEMENTS_TABLE = cast(Table, Enforcement.__table__)
GROUPS_TABLE = cast(Table, Group.__table__)
IDENTITIES_TABLE = cast(Table, Identity.__table__)
INVENTORIES_TABLE = cast(Table, Inventory.__table__)
ITEMS_TABLE = cast(Table, InventoryItem.__table__)
PACKAGES_TABLE = cast(Table, Package.__table__)
POLICIES_TABLE = cast(Table, Policy.__table__)
PRODUCTS_TABLE = cast(Table, Product.__table__)
REMEDIATIONS_TABLE = cast(Table, Remediation.__table__)
RESULTS_TABLE = cast(Table, Result.__table__)
SESSIONS_TABLE = cast(Table, Session.__table__)
SOFTWARE_TABLE = cast(Table, Software.__table__)
VERSIONS_TABLE = cast(Table, Version.__table__)
