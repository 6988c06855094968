"""``python -m gateway.db``: evidence schema maintenance.

``upgrade`` creates or upgrades the evidence tables (what the gateway does at start-up);
``current`` prints the database's revision and this program's; ``check`` compares the tables
in the database with the models (``alembic check``) and exits 1 on drift. ``--db URL``
(default ``$NEA_EVIDENCE_DB`` or ``sqlite:///var/nea-evidence.db``). Errors: message, exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from gateway.db.engine import (
    DEFAULT_DB_URL,
    head_revision,
    open_for_reading,
    open_for_writing,
    redacted,
)
from gateway.db.errors import EvidenceError, SchemaMismatch
from gateway.db.models import metadata

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.db", description="nea-gateway evidence schema maintenance"
    )
    parser.add_argument(
        "--db", metavar="URL", help=f"default: $NEA_EVIDENCE_DB or {DEFAULT_DB_URL}"
    )
    parser.add_argument("command", choices=("upgrade", "current", "check"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    url = args.db or os.environ.get("NEA_EVIDENCE_DB") or DEFAULT_DB_URL
    try:
        if args.command == "upgrade":
            open_for_writing(url).dispose()
            print(f"{redacted(url)}: evidence schema at {head_revision()}")
            return 0
        if args.command == "current":
            try:
                open_for_reading(url).dispose()
                found = head_revision()
            except SchemaMismatch as exc:
                print(str(exc), file=sys.stderr)
                return 1
            print(f"{redacted(url)}: {found} (head {head_revision()})")
            return 0
        engine = open_for_reading(url)
        try:
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            with engine.connect() as conn:

                def ours(name: object, type_: str, parent: object) -> bool:
                    # the pools may share the database: compare the evidence tables only
                    return type_ != "table" or (
                        str(name).startswith("nea_") and not str(name).endswith("alembic_version")
                    )

                ctx = MigrationContext.configure(
                    conn, opts={"compare_type": True, "include_name": ours}
                )
                diffs = compare_metadata(ctx, metadata)
        finally:
            engine.dispose()
        if diffs:
            for d in diffs:
                print(f"drift: {d}")
            return 1
        print(f"{redacted(url)}: tables match the models")
        return 0
    except EvidenceError as exc:
        print(f"python -m gateway.db: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        print(f"python -m gateway.db: error: {str(orig).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
