"""Tables of the SQL pools (SQLAlchemy Core) and schema creation through Alembic.

The layout follows strongSwan's attr-sql (pools, addresses, leases, identities, attributes,
attribute_pools) with one change: an address row is written the first time the address is
handed out, not when the pool is created. ``pools.next_offset`` counts the addresses of the
range never handed out, so creating a /8 writes one row, and a released address keeps its row
(with its identity) for reuse. Address-list pools (``--addresses FILE``) have no range
(``first_addr``/``last_addr`` NULL) and are written row by row, as the file asks.

The schema is created on first use by running the Alembic migrations in
``gateway/pools/migrations`` with their own version table (``nea_pool_alembic_version``), so
the pools can share a database with other nea-gateway tables.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "VERSION_TABLE",
    "addresses",
    "attribute_pools",
    "attributes",
    "ensure_schema",
    "identities",
    "leases",
    "metadata",
    "pools",
]

VERSION_TABLE = "nea_pool_alembic_version"

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_Id = BigInteger().with_variant(Integer(), "sqlite")

pools = Table(
    "pools",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("first_addr", LargeBinary(16), nullable=True),
    Column("last_addr", LargeBinary(16), nullable=True),
    Column("family", Integer, nullable=False),
    Column("timeout", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
)

identities = Table(
    "identities",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("data", String(1024), nullable=False, unique=True),
)

addresses = Table(
    "addresses",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("pool", _Id, ForeignKey("pools.id", ondelete="CASCADE"), nullable=False),
    Column("address", LargeBinary(16), nullable=False),
    Column("identity", _Id, ForeignKey("identities.id"), nullable=True),
    Column("acquired", BigInteger, nullable=False),
    Column("released", BigInteger, nullable=False),
    UniqueConstraint("pool", "address", name="uq_addresses_pool_address"),
    Index("ix_addresses_pool_identity", "pool", "identity"),
    Index("ix_addresses_pool_released", "pool", "released"),
)

leases = Table(
    "leases",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("address", _Id, ForeignKey("addresses.id", ondelete="CASCADE"), nullable=False),
    Column("identity", _Id, ForeignKey("identities.id"), nullable=False),
    Column("acquired", BigInteger, nullable=False),
    Column("released", BigInteger, nullable=False),
    Index("ix_leases_address", "address"),
)

attribute_pools = Table(
    "attribute_pools",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
)

attributes = Table(
    "attributes",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("identity", _Id, ForeignKey("identities.id"), nullable=True),
    Column("pool", _Id, ForeignKey("attribute_pools.id", ondelete="CASCADE"), nullable=True),
    Column("type", Integer, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Index("ix_attributes_pool_identity", "pool", "identity"),
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = zlib.crc32(b"nea-gateway pools schema")


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest revision (creating it on first use).

    On PostgreSQL a transaction-level advisory lock keeps several gateways starting together
    from racing to create the tables; on SQLite the write lock does the same."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
