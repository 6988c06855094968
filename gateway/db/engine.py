"""Engines and schema management for the evidence database.

The default database is a SQLite file under ``./var/`` of the working directory
(:data:`DEFAULT_DB_URL`, ``sqlite:///var/nea-evidence.db``); give a PostgreSQL URL
(``postgresql://user:password@host/dbname``, psycopg 3) to share it between gateways.

Writers (:func:`open_for_writing`) create the file and bring the schema to the newest
revision with the Alembic migrations in ``gateway/db/migrations`` (version table
``nea_evidence_alembic_version``, so the pools can live in the same database). Readers
(:func:`open_for_reading`, used by ``nea-report``) never create anything: a missing file, an
unreachable server, a file that is not a database or a database without evidence raise an
:class:`~gateway.db.errors.EvidenceError` subclass with a message for the operator.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, column, create_engine, event, inspect, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

from gateway.db.errors import (
    DatabaseMissing,
    InvalidDatabaseUrl,
    NotAnEvidenceDatabase,
    SchemaMismatch,
)
from gateway.db.models import VERSION_TABLE

__all__ = [
    "DEFAULT_DB_URL",
    "MIGRATIONS",
    "create_evidence_engine",
    "ensure_schema",
    "head_revision",
    "normalize_url",
    "open_for_reading",
    "open_for_writing",
    "redacted",
]

#: The gateway's and ``nea-report``'s default: a SQLite file under ./var/ of the working dir.
DEFAULT_DB_URL = "sqlite:///var/nea-evidence.db"

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = zlib.crc32(b"nea-gateway evidence schema")


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redacted(url: str) -> str:
    """The URL without its password (never print secrets)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url.split(":")[0] + ":..."


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database)).expanduser()


def create_evidence_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``. SQLite: WAL journal, foreign keys on, 30 s busy timeout, the
    file's directory created when ``create``. PostgreSQL: psycopg 3, session time zone UTC."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend != "sqlite":
            args = {"options": "-c timezone=UTC"} if backend == "postgresql" else {}
            return create_engine(parsed, pool_pre_ping=True, connect_args=args)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InvalidDatabaseUrl(
            f"invalid database URL {redacted(url)!r} ({exc}): use e.g. "
            f"{DEFAULT_DB_URL} or postgresql://user:password@host/dbname"
        ) from None
    path = _sqlite_path(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise DatabaseMissing(f"no evidence database at {path} (from {redacted(url)})")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if path is None:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    writer = create

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if path is not None and writer:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # writers take the write lock up front (no read-to-write upgrade failures)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def _alembic_config(conn: Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest revision (creating the tables on first use).

    On PostgreSQL a transaction-level advisory lock keeps gateways starting together from
    racing to create the tables; on SQLite the write lock does the same."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        command.upgrade(_alembic_config(conn), "head")


def open_for_writing(url: str = DEFAULT_DB_URL) -> Engine:
    """An engine whose database holds the newest evidence schema (created if needed)."""
    engine = create_evidence_engine(url, create=True)
    try:
        ensure_schema(engine)
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseMissing(f"cannot open {redacted(url)}: {_first_line(exc)}") from None
    except DatabaseError as exc:
        engine.dispose()
        raise NotAnEvidenceDatabase(f"{redacted(url)}: {_first_line(exc)}") from None
    return engine


def open_for_reading(url: str = DEFAULT_DB_URL) -> Engine:
    """An engine on an existing evidence database at the newest revision; never creates."""
    engine = create_evidence_engine(url, create=False)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if VERSION_TABLE not in tables:
                raise NotAnEvidenceDatabase(
                    f"{redacted(url)} is not an nea-gateway evidence database "
                    f"(no {VERSION_TABLE} table; the gateway creates it on first start)"
                )
            found = conn.execute(
                select(column("version_num")).select_from(table(VERSION_TABLE))
            ).scalar()
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseMissing(f"cannot open {redacted(url)}: {_first_line(exc)}") from None
    except DatabaseError as exc:
        engine.dispose()
        raise NotAnEvidenceDatabase(
            f"{redacted(url)} is not an nea-gateway evidence database: {_first_line(exc)}"
        ) from None
    except NotAnEvidenceDatabase:
        engine.dispose()
        raise
    head = head_revision()
    if found != head:
        engine.dispose()
        raise SchemaMismatch(
            f"{redacted(url)}: evidence schema revision {found!r}, this program needs {head!r} "
            "(start the gateway of this version once to upgrade it)"
        )
    return engine


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
