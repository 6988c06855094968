"""Run nea-report on a database holding ``evidence_data``'s assessments and check every
report's content in every format. Shared by the SQLite and the PostgreSQL tests."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from xml.etree import ElementTree

from gateway.report.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def report_json(url: str, *argv: str) -> dict[str, Any]:
    code, out, err = run("--db", url, "--format", "json", *argv)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def csv_blocks(text: str) -> dict[str, list[dict[str, str]]]:
    """Parse the multi-section CSV: header rows start with "section"."""
    blocks: dict[str, list[dict[str, str]]] = {}
    header: list[str] = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == "section":
            header = row[1:]
            continue
        blocks.setdefault(row[0], []).append(dict(zip(header, row[1:], strict=True)))
    return blocks


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


# --------------------------------------------------------------------------- expectations


def check_summary(url: str) -> None:
    doc = report_json(url, "summary")
    f = doc["figures"]
    assert f["compliance_rate"] == 33.3
    assert (f["compliant_devices"], f["noncompliant_devices"], f["assessed_devices"]) == (1, 2, 3)
    assert (f["sessions"], f["decided_sessions"], f["interrupted_sessions"]) == (6, 5, 1)
    assert f["session_allow_rate"] == 60.0
    assert f["devices"] == 4 and f["identities"] == 5
    s = doc["sections"]
    recs = {r["recommendation"]: r["sessions"] for r in s["by_recommendation"]}
    assert recs == {"allow": 3, "isolate": 1, "block": 1, "interrupted": 1}
    os_rows = by(s["by_os"], "os")
    assert os_rows["Debian 12 x86_64"]["devices"] == 2
    assert os_rows["Debian 12 x86_64"]["compliant"] == 1
    assert os_rows["Debian 12 x86_64"]["compliance_rate"] == 50.0
    assert os_rows["Ubuntu 22.04 x86_64"]["noncompliant"] == 1
    policies = by(s["by_policy"], "policy")
    assert policies["no-forwarding"] == {
        "policy": "no-forwarding",
        "type": "FWDEN",
        "passed": 3,
        "failed": 1,
        "no_result": 0,
        "skipped": 1,
        "pass_rate": 80.0,
    }
    assert (policies["packages"]["passed"], policies["packages"]["failed"]) == (3, 1)
    assert policies["default-password"]["no_result"] == 1
    trend = by(s["trend"], "day")
    assert trend["2026-11-20"]["sessions"] == 2 and trend["2026-11-20"]["isolate"] == 1
    assert trend["2026-11-21"]["sessions"] == 4
    assert (
        trend["2026-11-21"]["allow"],
        trend["2026-11-21"]["block"],
        trend["2026-11-21"]["interrupted"],
    ) == (2, 1, 1)

    code, out, _ = run("--db", url, "--format", "csv", "summary")
    assert code == 0
    blocks = csv_blocks(out)
    figures = {r["name"]: r["value"] for r in blocks["figures"]}
    assert figures["compliance_rate"] == "33.3" and figures["sessions"] == "6"
    assert by(blocks["by_os"], "os")["Ubuntu 22.04 x86_64"]["devices"] == "1"
    assert by(blocks["by_policy"], "policy")["packages"]["failed"] == "1"
    assert by(blocks["trend"], "day")["2026-11-21"]["sessions"] == "4"

    code, out, _ = run("--db", url, "--format", "html", "summary")
    assert code == 0
    check_html(out)
    assert "33.3%" in out and "Ubuntu 22.04 x86_64" in out and "no-forwarding" in out
    assert out.count("<svg") >= 5  # headline + four sections
    assert "2026-11-21" in out

    code, out, _ = run("--db", url, "summary")
    assert code == 0
    assert "33.3%" in out and "Debian 12 x86_64" in out and "2026-11-20" in out
    assert re.search(r"interrupted sessions\s+1", out)


def check_html(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<svg" in text
    # self-contained: no external references (scripts, style sheets, images, fonts)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b|@import|url\(", text)
    assert not re.search(r"<[a-zA-Z][^<>]*\s(src|href)=", text)
    for svg in re.findall(r"<svg.*?</svg>", text, re.S):  # every chart is well-formed SVG
        root = ElementTree.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.attrib["width"]) > 0 and float(root.attrib["height"]) > 0


def check_endpoints(url: str) -> None:
    doc = report_json(url, "endpoints")
    rows = by(doc["sections"]["endpoints"], "device")
    assert sorted(rows) == ["dev-a", "dev-b", "dev-c", "dev-d"]
    assert rows["dev-a"]["state"] == "allow" and rows["dev-a"]["sessions"] == 2
    assert rows["dev-a"]["address"] == "192.0.2.11"  # the newest session's address
    assert rows["dev-b"]["state"] == "isolate" and rows["dev-b"]["failed_policies"] == 1
    assert (
        rows["dev-c"]["os"] == "Ubuntu 22.04 x86_64" and rows["dev-c"]["identity"] == "carol@corp"
    )
    assert rows["dev-d"]["state"] == "interrupted"
    code, out, _ = run("--db", url, "--format", "csv", "endpoints")
    assert code == 0
    parsed = by(list(csv.DictReader(io.StringIO(out))), "device")
    assert parsed["dev-b"]["state"] == "isolate" and parsed["dev-a"]["sessions"] == "2"
    code, out, _ = run("--db", url, "--format", "html", "endpoints")
    check_html(out)
    assert "dev-d" in out and "interrupted" in out and "198.51.100.7" in out


def check_endpoint(url: str) -> None:
    doc = report_json(url, "endpoint", "dev-a")
    assert doc["figures"]["sessions"] == 2 and doc["figures"]["os"] == "Debian 12 x86_64"
    sessions = doc["sections"]["sessions"]
    assert [s["state"] for s in sessions] == ["allow", "allow"]
    assert sessions[0]["started"].startswith("2026-11-21")  # newest first
    results = doc["sections"]["results"]
    outcomes = sorted((r["policy"], r["outcome"]) for r in results)
    assert outcomes == [
        ("default-password", "passed"),
        ("no-forwarding", "passed"),
        ("no-forwarding", "skipped"),
        ("packages", "passed"),
        ("packages", "passed"),
    ]
    inv = doc["sections"]["inventories"]
    assert len(inv) == 1 and inv[0]["items"] == 2  # day 2 reused the day-1 inventory

    doc = report_json(url, "endpoint", "dev-c")
    result = by(doc["sections"]["results"], "policy")["packages"]
    assert result["evidence"] == {"blacklisted": [["openssl", "3.0.9-1"]]}
    assert result["recommendation"] == "block" and result["group"] == "debian"
    assert doc["sections"]["remediations"][0]["text"] == "Upgrade openssl"
    assert {i["kind"] for i in doc["sections"]["inventories"]} == {"packages", "swima"}
    assert doc["sections"]["sessions"][0]["facts"]["forwarding"] == 0

    code, out, _ = run("--db", url, "--format", "csv", "endpoint", "dev-b")
    blocks = csv_blocks(out)
    assert by(blocks["results"], "policy")["no-forwarding"]["outcome"] == "failed"
    assert json.loads(by(blocks["results"], "policy")["no-forwarding"]["evidence"]) == {
        "forwarding": 1
    }
    assert blocks["remediations"][0]["uri"] == "https://help.example.com/forwarding"
    code, out, _ = run("--db", url, "--format", "html", "endpoint", "dev-b")
    check_html(out)
    assert code == 0 and "IP forwarding is enabled" in out and "192.0.2.20" in out
    code, out, _ = run("--db", url, "endpoint", "dev-b")
    assert code == 0 and "no-forwarding" in out and "Disable IP forwarding" in out
    code, out, err = run("--db", url, "endpoint", "no-such-device")
    assert code == 2 and "no device 'no-such-device'" in err and out == ""


def check_sessions(url: str) -> None:
    doc = report_json(url, "sessions")
    rows = doc["sections"]["sessions"]
    assert len(rows) == 6
    assert [r["identity"] for r in rows] == [
        "alice@corp",
        "bob@corp",
        "alice@corp",
        "carol@corp",
        "dave@corp",
        "eve@corp",
    ]
    dave = rows[4]
    assert dave["state"] == "interrupted" and dave["ended"] is None
    assert dave["address"] == "203.0.113.4" and dave["device"] == "dev-d"
    assert rows[5]["device"] is None and rows[5]["state"] == "allow"
    day2 = report_json(url, "sessions", "--since", "2026-11-21", "--until", "2026-11-21T09:15")
    assert [r["identity"] for r in day2["sections"]["sessions"]] == ["alice@corp", "carol@corp"]
    assert day2["filters"]["since"].startswith("2026-11-21T00:00")
    # options after the command work too; --limit and --device
    only = report_json(url, "sessions", "--device", "dev-a", "--limit", "1")
    assert [r["started"][:10] for r in only["sections"]["sessions"]] == ["2026-11-20"]
    code, out, _ = run("--db", url, "--format", "csv", "sessions", "--since", "2026-11-21")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert [r["state"] for r in parsed] == ["allow", "block", "interrupted", "allow"]
    code, out, _ = run("--db", url, "--format", "html", "sessions")
    check_html(out)
    assert code == 0 and "eve@corp" in out and "interrupted" in out
    code, out, _ = run("--db", url, "sessions", "--since", "2030-01-01")
    assert code == 0 and "no sessions in this period" in out


def check_policies(url: str) -> None:
    doc = report_json(url, "policies")
    rows = by(doc["sections"]["policies"], "policy")
    assert sorted(rows) == ["default-password", "no-forwarding", "packages"]
    fwd = rows["no-forwarding"]
    assert (fwd["passed"], fwd["failed"], fwd["skipped"], fwd["results"]) == (3, 1, 1, 5)
    assert fwd["groups"] == "default (max_age 86400s)" and fwd["type"] == "FWDEN"
    assert fwd["devices_failing"] == 1 and fwd["pass_rate"] == 80.0
    assert rows["packages"]["groups"] == "debian" and rows["packages"]["devices_failing"] == 1
    assert rows["default-password"]["devices_failing"] == 0  # no_result -> allow
    code, out, _ = run("--db", url, "--format", "csv", "policies")
    parsed = by(list(csv.DictReader(io.StringIO(out))), "policy")
    assert parsed["packages"]["failed"] == "1" and parsed["no-forwarding"]["skipped"] == "1"
    code, out, _ = run("--db", url, "--format", "html", "policies")
    check_html(out)
    assert "default-password" in out and "66.7" in out
    code, out, _ = run("--db", url, "policies")
    assert code == 0
    assert re.search(r"no-forwarding\s+.\s+FWDEN", out)


def check_noncompliant(url: str) -> None:
    doc = report_json(url, "noncompliant")
    rows = by(doc["sections"]["noncompliant"], "device")
    assert sorted(rows) == ["dev-b", "dev-c"]
    b, c = rows["dev-b"], rows["dev-c"]
    assert b["identity"] == "bob@corp" and b["recommendation"] == "isolate"
    assert "no-forwarding failed -> isolate: IP forwarding is enabled" in b["why"]
    assert b["remediation_sent"] is True
    assert "https://help.example.com/forwarding" in b["remediation"]
    assert "Disable IP forwarding" in b["remediation"]
    assert c["recommendation"] == "block" and "packages failed -> block" in c["why"]
    assert c["remediation"] == "Upgrade openssl" and c["address"] == "198.51.100.7"
    assert doc["figures"]["noncompliant_devices"] == 2
    code, out, _ = run("--db", url, "--format", "csv", "noncompliant")
    parsed = by(list(csv.DictReader(io.StringIO(out))), "device")
    assert sorted(parsed) == ["dev-b", "dev-c"]
    assert parsed["dev-c"]["identity"] == "carol@corp"
    assert parsed["dev-b"]["remediation_sent"] == "yes"
    code, out, _ = run("--db", url, "--format", "html", "noncompliant")
    check_html(out)
    assert "33.3%" in out
    assert code == 0 and "bob@corp" in out and "Upgrade openssl" in out
    code, out, _ = run("--db", url, "noncompliant")
    assert "dev-b" in out and "dev-c" in out and "dev-a" not in out


def check_fail_under(url: str) -> None:
    code, _, err = run("--db", url, "--format", "json", "--fail-under", "50", "summary")
    assert code == 1 and "33.3% (1/3 devices) is below 50%" in err
    assert run("--db", url, "--fail-under", "33", "summary")[0] == 0
    assert run("--db", url, "noncompliant", "--fail-under", "33.4")[0] == 1
    # day 1 alone: dev-a allow, dev-b isolate -> 50 %
    assert run("--db", url, "--until", "2026-11-21", "--fail-under", "50", "policies")[0] == 0
    assert run("--db", url, "--until", "2026-11-21", "--fail-under", "50.1", "policies")[0] == 1
    code, _, err = run("--db", url, "--since", "2030-01-01", "--fail-under", "1", "summary")
    assert code == 1 and "no device has been assessed" in err


def check_all(url: str) -> None:
    check_summary(url)
    check_endpoints(url)
    check_endpoint(url)
    check_sessions(url)
    check_policies(url)
    check_noncompliant(url)
    check_fail_under(url)
