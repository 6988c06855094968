"""``python -m gateway.demo --endpoints 6`` end to end in a temporary directory: a real
nea-gateway subprocess, real IKEv2 + EAP + PT-EAP endpoints, the report at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.demo.run import EXPECTED, fast_in_gateway, fleet_plan

REPO = Path(__file__).resolve().parents[3]


def test_fleet_plan_varies_methods_and_profiles() -> None:
    plan = fleet_plan(24, fast=False)
    assert len(plan) == 24
    assert {m for m, _, _ in plan} == {"eap-ttls", "eap-peap", "eap-tls"}
    assert {p for _, p, _ in plan if p} == {
        "compliant",
        "forwarding",
        "forbidden-package",
        "forbidden-port",
        "outdated-os",
    }
    assert any(not good for _, _, good in plan)
    assert {m for m, _, _ in fleet_plan(24, fast=True)} >= {"eap-fast"}


@pytest.mark.slow
def test_demo_small_fleet(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="140")
    r = subprocess.run(
        [sys.executable, "-m", "gateway.demo", "--endpoints", "6", "--dataplane", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    workdir = tmp_path / "var" / "demo"
    assert (workdir / "pki" / "ca.crt").is_file()
    assert "Starting nea-gateway on 127.0.0.1" in out
    # What examples/policy.toml decides for each profile of the plan (EAP-TLS: no posture).
    plan = fleet_plan(6, fast=fast_in_gateway() is None)
    want: dict[str, int] = {}
    for _, profile, _ in plan:
        outcome = EXPECTED[profile] if profile else "allow"
        want[outcome] = want.get(outcome, 0) + 1
    line = ", ".join(f"{n} {k}" for k, n in sorted(want.items()))
    assert f"Fleet done: {line}" in out
    assert want.get("denied") == 1 and want.get("isolate", 0) >= 1
    for row in ("ep01", "ep06"):
        assert row in out
    assert "IKE_SAs established" in out  # the gateway's own counters over its control socket
    # nea-report's summary of this run's evidence: one session per posture endpoint.
    assert "Compliance summary" in out
    assert f"sessions              {sum(1 for _, p, _ in plan if p)}" in out
    html = workdir / "report.html"
    assert f"HTML report: {html}" in out.replace("\n", "")
    assert html.read_text().lstrip().lower().startswith("<!doctype html")
    assert "eap-fast" in out or "EAP-FAST is left out" in out
    assert "done in" in out
