"""nea-report on SQLite: every report, every format, --fail-under, errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.db import open_evidence_sink
from tests.gateway.evidence.evidence_data import policy_config, write_assessments
from tests.gateway.report import report_checks as checks


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "evidence.db"
    url = f"sqlite:///{path}"
    sink = open_evidence_sink(url)  # the gateway's way: threaded writer
    sink.sync_policy(policy_config())
    write_assessments(sink, bind_address=sink.bind_address)
    sink.close()
    assert sink.dropped == 0
    return url


def test_summary(url: str) -> None:
    checks.check_summary(url)


def test_endpoints(url: str) -> None:
    checks.check_endpoints(url)


def test_endpoint_history(url: str) -> None:
    checks.check_endpoint(url)


def test_sessions(url: str) -> None:
    checks.check_sessions(url)


def test_policies(url: str) -> None:
    checks.check_policies(url)


def test_noncompliant(url: str) -> None:
    checks.check_noncompliant(url)


def test_fail_under(url: str) -> None:
    checks.check_fail_under(url)


def test_html_to_file_is_self_contained(url: str, tmp_path: Path) -> None:
    target = tmp_path / "audit.html"
    code, out, err = checks.run("--db", url, "summary", "--format", "html", "-o", str(target))
    assert (code, out, err) == (0, "", "")
    text = target.read_text(encoding="utf-8")
    checks.check_html(text)
    assert "33.3%" in text and "<title>Compliance summary" in text


def test_database_from_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEA_EVIDENCE_DB", url)
    code, out, _ = checks.run("--format", "json", "summary")
    assert code == 0 and json.loads(out)["figures"]["sessions"] == 6


def test_default_database_is_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEA_EVIDENCE_DB", raising=False)
    code, _, err = checks.run("summary")
    assert code == 2 and "var/nea-evidence.db" in err
    assert not (tmp_path / "var").exists()  # reading never creates the database
    sink = open_evidence_sink()
    sink.close()
    assert (tmp_path / "var" / "nea-evidence.db").is_file()
    code, out, _ = checks.run("--format", "json", "summary")
    assert code == 0 and json.loads(out)["figures"]["sessions"] == 0


def test_empty_database_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_evidence_sink(url, threaded=False).close()
    doc = checks.report_json(url, "summary")
    assert doc["figures"]["compliance_rate"] is None and doc["figures"]["sessions"] == 0
    for command in ("summary", "endpoints", "sessions", "policies", "noncompliant"):
        for fmt in ("table", "json", "csv", "html"):
            code, out, err = checks.run("--db", url, "--format", fmt, command)
            assert code == 0, (command, fmt, err)
            assert out
    code, out, _ = checks.run("--db", url, "noncompliant")
    assert "every assessed endpoint is compliant" in out


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "html"])
def test_missing_database(tmp_path: Path, fmt: str) -> None:
    missing = tmp_path / "nope" / "evidence.db"
    code, out, err = checks.run("--db", f"sqlite:///{missing}", "--format", fmt, "summary")
    assert code == 2 and out == ""
    assert err.startswith("nea-report: error: no evidence database at ")
    assert "Traceback" not in err
    assert not missing.parent.exists()


def test_wrong_databases(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database\n" * 100)
    code, _, err = checks.run("--db", f"sqlite:///{junk}", "summary")
    assert code == 2 and "not an nea-gateway evidence database" in err
    assert "Traceback" not in err

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE pools (id INTEGER PRIMARY KEY)")
    code, _, err = checks.run("--db", f"sqlite:///{other}", "endpoints")
    assert code == 2 and "no nea_evidence_alembic_version table" in err

    old = tmp_path / "old.db"
    open_evidence_sink(f"sqlite:///{old}", threaded=False).close()
    with sqlite3.connect(old) as c:
        c.execute("UPDATE nea_evidence_alembic_version SET version_num = '0000_future'")
    code, _, err = checks.run("--db", f"sqlite:///{old}", "summary")
    assert code == 2 and "revision '0000_future'" in err

    for bad in ("nosuchdialect://x/y", "not a url"):
        code, _, err = checks.run("--db", bad, "summary")
        assert code == 2 and "invalid database URL" in err, err


def test_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://u:secret@/evidence?host={tmp_path}&port=1"
    code, _, err = checks.run("--db", url, "summary")
    assert code == 2 and "cannot open" in err
    assert "secret" not in err and "Traceback" not in err


def test_usage_errors(url: str) -> None:
    code, _, err = checks.run("--db", url, "--since", "yesterday-ish", "sessions")
    assert code == 2 and "invalid time 'yesterday-ish'" in err
    code, _, err = checks.run("--db", url, "--fail-under", "120", "summary")
    assert code == 2 and "between 0 and 100" in err
    assert checks.run("--db", url)[0] == 2  # no command
    assert checks.run("--db", url, "--format", "xml", "summary")[0] == 2
    code, _, err = checks.run("--db", url, "summary", "-o", "/nonexistent-dir/x.html")
    assert code == 2 and "cannot write" in err


def test_relative_since(url: str) -> None:
    # everything in the fixture lies in 2026-11; "1d" ago from now excludes or includes it
    # depending on the date, so compare against an explicit window instead
    doc = checks.report_json(url, "sessions", "--since", "520w")
    assert len(doc["sections"]["sessions"]) == 6


def test_endpoint_supplied_text_is_escaped(tmp_path: Path) -> None:
    """Identities, device ids and reasons come from endpoints: HTML-escaped, CSV-defused."""
    from nea.imv.evidence import DeviceFacts, SessionStart
    from tests.gateway.evidence.evidence_data import DAY1, _decide, _result

    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    sink = open_evidence_sink(url, threaded=False)
    who = '<script>alert("x")</script>@corp'
    device = '=HYPERLINK("http://203.0.113.9")'
    sink.session_started(SessionStart(1, who, DAY1))
    sink.facts_measured(DeviceFacts(1, DAY1, device_id=device, product="<b>OS</b>"))
    sink.policy_result(
        _result(
            1,
            device,
            who,
            "packages",
            "failed",
            DAY1,
            rec="block",
            reason="+1 <img src=x onerror=alert(1)>",
        )
    )
    sink.session_decided(_decide(1, device, who, "block", DAY1))
    sink.close()
    for command in (["noncompliant"], ["endpoints"], ["sessions"], ["endpoint", device]):
        code, out, err = checks.run("--db", url, "--format", "html", *command)
        assert code == 0, err
        assert "<script>alert" not in out and "<img" not in out and "<b>OS" not in out
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;@corp" in out
        checks.check_html(out)
    code, out, _ = checks.run("--db", url, "--format", "csv", "noncompliant")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["device"] == "'" + device and row["identity"] == who
    assert row["why"].startswith("packages failed -> block: +1 <img")
    doc = checks.report_json(url, "noncompliant")
    assert doc["sections"]["noncompliant"][0]["device"] == device  # JSON keeps the data as is


def test_long_sections_stream_as_plain_text(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.report import render

    monkeypatch.setattr(render, "RICH_ROWS", 2)
    code, out, _ = checks.run("--db", url, "sessions")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("session "))
    assert lines[header + 1].startswith("-------")
    body = lines[header + 2 : header + 8]
    who = ["alice@corp", "bob@corp", "alice@corp", "carol@corp", "dave@corp", "eve@corp"]
    assert all(name in line for name, line in zip(who, body, strict=True))
    start = lines[header].index("identity")  # aligned: every identity starts in its column
    assert [line[start:].split()[0] for line in body] == who
    assert "interrupted" in body[4] and lines[header + 8] == "(6 rows)"
