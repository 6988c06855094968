"""Errors of the evidence database (one root: :class:`EvidenceError`)."""

from __future__ import annotations

__all__ = [
    "DatabaseMissing",
    "EvidenceError",
    "InvalidDatabaseUrl",
    "NotAnEvidenceDatabase",
    "SchemaMismatch",
]


class EvidenceError(Exception):
    """Root of the evidence-database errors; the message is meant for the operator."""


class InvalidDatabaseUrl(EvidenceError):
    """The URL cannot be parsed or names an unknown dialect/driver."""


class DatabaseMissing(EvidenceError):
    """The database (SQLite file) does not exist, or the server cannot be reached."""


class NotAnEvidenceDatabase(EvidenceError):
    """The database exists but holds no nea-gateway evidence (or is not a database at all)."""


class SchemaMismatch(EvidenceError):
    """The evidence schema is at another revision than this program expects."""
