"""The evidence database (SQLAlchemy 2, Alembic): what the validators saw and decided.

* :func:`open_evidence_sink` / :class:`SqlEvidenceSink` -- the
  :class:`nea.imv.evidence.EvidenceSink` the gateway hands to its validators (a queue and one
  writer thread, so the reactor never blocks).
* :class:`EvidenceStore` -- synchronous writes of the records, ``sync_policy``,
  ``last_compliant``.
* :mod:`gateway.db.models` -- the tables; :mod:`gateway.db.engine` -- URLs, engines,
  migrations. Default database: :data:`DEFAULT_DB_URL` (``sqlite:///var/nea-evidence.db``,
  relative to the working directory).
"""

from gateway.db.engine import (
    DEFAULT_DB_URL,
    ensure_schema,
    open_for_reading,
    open_for_writing,
)
from gateway.db.errors import (
    DatabaseMissing,
    EvidenceError,
    InvalidDatabaseUrl,
    NotAnEvidenceDatabase,
    SchemaMismatch,
)
from gateway.db.sink import SqlEvidenceSink, open_evidence_sink
from gateway.db.store import (
    AccountingUpdate,
    AddressBound,
    EvidenceStore,
    PolicySync,
    SessionEnded,
)

__all__ = [
    "DEFAULT_DB_URL",
    "AccountingUpdate",
    "AddressBound",
    "DatabaseMissing",
    "EvidenceError",
    "EvidenceStore",
    "InvalidDatabaseUrl",
    "NotAnEvidenceDatabase",
    "PolicySync",
    "SchemaMismatch",
    "SessionEnded",
    "SqlEvidenceSink",
    "ensure_schema",
    "open_evidence_sink",
    "open_for_reading",
    "open_for_writing",
]
