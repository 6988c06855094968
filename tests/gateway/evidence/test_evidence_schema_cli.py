"""python -m gateway.db: upgrade, current, check (drift) and errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.db.__main__ import main
from gateway.db.engine import head_revision
from gateway.pools import SqlPools


def test_upgrade_current_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'e.db'}"
    assert main(["--db", url, "current"]) == 2
    assert "no evidence database" in capsys.readouterr().err
    assert main(["--db", url, "upgrade"]) == 0
    assert head_revision() in capsys.readouterr().out
    assert main(["--db", url, "current"]) == 0
    assert f"{head_revision()} (head {head_revision()})" in capsys.readouterr().out
    SqlPools(url).close()  # the pools' tables in the same file are not drift
    assert main(["--db", url, "check"]) == 0
    assert "tables match the models" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "var" / "e.db") as c:
        c.execute("ALTER TABLE nea_sessions ADD COLUMN hand_made TEXT")
        c.execute("DROP INDEX ix_nea_results_policy")
    assert main(["--db", url, "check"]) == 1
    out = capsys.readouterr().out
    assert "hand_made" in out and "ix_nea_results_policy" in out
    with sqlite3.connect(tmp_path / "var" / "e.db") as c:
        c.execute("UPDATE nea_evidence_alembic_version SET version_num = 'old'")
    assert main(["--db", url, "current"]) == 1
    assert "revision 'old'" in capsys.readouterr().err
