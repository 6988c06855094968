"""Issue 11 scenarios over PT-TLS (RFC 6876): the same validators and policy as the
gateway's, ``gateway.pt_tls``'s server, clients with SASL PLAIN on loopback TLS (driven by
``pt_tls_site.py`` in a subprocess, so the Twisted reactor is its own):

* scenario 6: compliant -> allow, IP forwarding -> isolate, telnet port -> block;
* scenario 3: the isolated client remediates and sends CRETRY on the open session -> allow;
* scenario 4: a stricter policy (ssh port 22 isolates) is loaded into the validators; the
  server sends SRETRY to the connections it affects -> they are isolated.

Checked in the evidence database with ``nea-report sessions/endpoints --format json``
(retried handshakes have ``retry`` true) and the client's results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness.certs import CertFactory
from tests.scenarios.scenario_rig import ENV, POLICY, PROFILES, nea_report, write_profile

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parent
FORWARDING_DEVICE = "1c7f3b5d9e2a4c6b8d0f2e4a6c8b0d2f"


def test_pt_tls_assessment_cretry_and_sretry(cert_factory: CertFactory, tmp_path: Path) -> None:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(
        POLICY.read_text()
        + '\n[policies.no-ssh]\ntype = "TCPBL"\nargument = "22"\nrec_fail = "isolate"\n'
        + '\n[[enforcements]]\npolicy = "no-ssh"\ngroup = "default"\n'
    )
    remediated = write_profile(tmp_path / "remediated.toml", "forwarding", forwarding=False)
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    r = subprocess.run(
        [sys.executable, str(HERE / "pt_tls_site.py"), "--cert", str(gw.cert_path),
         "--key", str(gw.key_path), "--ca", str(ca.cert_path), "--policy", str(POLICY),
         "--stricter-policy", str(stricter), "--db", db,
         "--client", f"alice:{PROFILES / 'compliant.toml'}",
         "--client", f"bob:{PROFILES / 'forwarding.toml'}",
         "--client", f"carol:{PROFILES / 'forbidden-port.toml'}",
         "--remediate", f"bob:{remediated}", "--bad-password", "alice"],
        capture_output=True, text=True, env=ENV, timeout=120, check=False,
    )
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(r.stdout)
    # scenario 6: the three verdicts over PT-TLS
    assert [out[n]["first"] for n in ("alice", "bob", "carol")] == [
        "ALLOWED", "QUARANTINED", "DENIED"], out
    # SASL PLAIN with a wrong password: no assessment, the session is closed
    assert out["bad_password"]["results"] == [], out
    assert out["bad_password"]["closed"] == "server aborted SASL PLAIN", out
    # scenario 3: CRETRY after remediation
    assert out["bob"]["cretry"] == "ALLOWED", out
    # scenario 4: SRETRY after the policy change; port 22 is open on every profile
    assert "alice" in out["affected"] and "bob" in out["affected"], out
    assert out["alice"]["sretry"] == "QUARANTINED", out
    assert out["bob"]["sretry"] == "QUARANTINED", out
    assert out["carol"].get("sretry", "DENIED") == "DENIED", out
    assert all(out[n]["closed"] for n in ("alice", "bob", "carol")), out

    sessions = nea_report(db, "sessions")["sections"]["sessions"]
    by_user: dict[str, list[tuple[str, bool]]] = {}
    for row in sorted(sessions, key=lambda s: s["session"]):
        by_user.setdefault(row["identity"], []).append((row["state"], row["retry"]))
        assert row["address"] == "127.0.0.1", row
        assert row["ended"] is not None, row
    assert by_user["alice"] == [("allow", False), ("isolate", True)], by_user
    assert by_user["bob"] == [("isolate", False), ("allow", True), ("isolate", True)], by_user
    assert by_user["carol"][0] == ("block", False), by_user
    endpoints = {e["device"]: e for e in nea_report(db, "endpoints")["sections"]["endpoints"]}
    assert endpoints[FORWARDING_DEVICE]["state"] == "isolate"
    assert endpoints[FORWARDING_DEVICE]["sessions"] == 3
    policies = json.dumps(nea_report(db, "policies"))
    assert "no-ssh" in policies and "no-forwarding" in policies
