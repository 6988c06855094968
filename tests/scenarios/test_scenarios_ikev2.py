"""Issue 11 scenarios over IKEv2 (and 802.1X RADIUS) against one running nea-gateway.

Like strongSwan's testing/tests/tnc/ scenarios: a gateway namespace with the daemon
(userspace ESP dataplane, PT-EAP inside EAP-TTLS, ``examples/policy.toml``) in front of an
"allow" subnet (10.1.0.0/16) and a "remediation" subnet (10.99.255.0/24); clients in their
own namespaces run ``nea-endpoint`` with the profiles of ``examples/profiles/``. Every
scenario checks the evidence database through ``nea-report ... --format json``.

One daemon serves the whole module (the scenarios use distinct identities and devices), so
the module stays well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.certs import CertFactory
from tests.harness.netns import NetnsFactory
from tests.harness.tools import require
from tests.scenarios.scenario_rig import (
    ALLOW_ADDR,
    ENV,
    PROFILES,
    RADIUS_SECRET,
    REMEDIATION_ADDR,
    Site,
    nea_report,
    ping,
    write_profile,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    require("ip")
    require("ping")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun for the userspace dataplane")
    workdir = tmp_path_factory.mktemp("scenario-site")
    nets = NetnsFactory()
    site = None
    try:
        site = Site(nets, workdir, CertFactory(workdir / "certs"))
        site.start()
        yield site
    finally:
        if site is not None:
            site.stop()
            print(site.log_tail(6000))
        nets.close()


def _rows(site: Site, report: str) -> list[dict[str, Any]]:
    """The rows of ``nea-report REPORT --format json`` (its section of the same name)."""
    data = nea_report(site.db_url, report)
    return list(data["sections"][report])


def _sessions(site: Site) -> list[dict[str, Any]]:
    return _rows(site, "sessions")


def _device_sessions(site: Site, device_id: str) -> list[dict[str, Any]]:
    return [r for r in _sessions(site) if r["device"] == device_id]


def _endpoints(site: Site) -> dict[str, dict[str, Any]]:
    return {r["device"]: r for r in _rows(site, "endpoints")}


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_allowed_and_isolated_reach_different_subnets(site: Site) -> None:
    """Scenario 1: a compliant endpoint reaches the allow subnet; one with IP forwarding on
    is isolated: it reaches the remediation subnet only."""
    ns_a, gw_a = site.client()
    ns_b, gw_b = site.client()
    allowed, res_a = site.connect(ns_a, gw_a, "alice", PROFILES / "compliant.toml")
    isolated = None
    try:
        isolated, res_b = site.connect(ns_b, gw_b, "bob", PROFILES / "forwarding.toml")
        assert res_a["outcome"] == "allow", res_a
        assert res_b["outcome"] == "isolate", res_b
        (vip_a,), (vip_b,) = res_a["virtual_ips"], res_b["virtual_ips"]
        assert vip_a.startswith("10.3.0.") and vip_b.startswith("10.98.0."), (vip_a, vip_b)
        assert ping(ns_a, ALLOW_ADDR), site.log_tail()
        assert ping(ns_b, REMEDIATION_ADDR), site.log_tail()
        assert not ping(ns_b, ALLOW_ADDR)
        # both IKE_SAs are listed with their virtual IPs
        listing = json.dumps(site.list_sas())
        assert vip_a in listing and vip_b in listing
    finally:
        _stop(allowed)
        if isolated is not None:
            _stop(isolated)
    ends = _endpoints(site)
    comp = ends["0b6e2a4c8d1f4e7a9c3b5d7f9e1a3c5b"]
    fwd = ends["1c7f3b5d9e2a4c6b8d0f2e4a6c8b0d2f"]
    assert _rec(comp) == "allow", comp
    assert _rec(fwd) == "isolate", fwd
    by_id = {_identity(r): r for r in _sessions(site)}
    assert _rec(by_id["alice"]) == "allow" and by_id["alice"]["access"] == "allowed"
    assert _rec(by_id["bob"]) == "isolate" and by_id["bob"]["access"] == "quarantined"
    (nc,) = [r for r in _rows(site, "noncompliant") if r["identity"] == "bob"]
    assert nc["device"] == "1c7f3b5d9e2a4c6b8d0f2e4a6c8b0d2f"
    assert "no-forwarding" in nc["why"] and nc["remediation_sent"], nc


def _rec(row: dict[str, Any]) -> str:
    """The state (allow / isolate / block) nea-report gives a session or endpoint."""
    return str(row["state"])


def _identity(row: dict[str, Any]) -> str:
    return str(row["identity"])


def test_blocked_endpoint_fails_eap(site: Site) -> None:
    """Scenario 2: an endpoint with a telnet port open is blocked: IKE_AUTH fails
    (AUTHENTICATION_FAILED), no IKE_SA stays, the database records the block."""
    ns, gw = site.client()
    code, res = site.run_once(ns, gw, "carol", PROFILES / "forbidden-port.toml")
    assert code == 4, res
    assert res["outcome"] in ("denied", "auth-failed", "block"), res
    assert not res.get("virtual_ips"), res
    assert "carol" not in json.dumps(site.list_sas())
    profile = (PROFILES / "forbidden-port.toml").read_text()
    device = profile.split('id = "', 2)[2].split('"', 1)[0]
    ends = _endpoints(site)
    assert _rec(ends[device]) in ("block", "no access", "no_access", "deny"), ends[device]
    assert "no-telnet" in json.dumps(nea_report(site.db_url, "noncompliant"))


def test_isolated_endpoint_remediates_and_is_allowed(site: Site, tmp_path: Path) -> None:
    """Scenario 3: an isolated endpoint turns IP forwarding off and is then allowed.

    nea-endpoint has no CRETRY trigger (PT-EAP ran inside IKE_AUTH, which is over): the
    endpoint re-authenticates with the remediated profile, as strongSwan's IKEv2 clients do.
    The real CRETRY is exercised over PT-TLS (test_scenarios_pt_tls.py)."""
    device = "5cenar10000000000000000000000003"
    before = write_profile(tmp_path / "before.toml", "forwarding", id=device)
    after = write_profile(tmp_path / "after.toml", "forwarding", id=device, forwarding=False)
    ns, gw = site.client()
    code, res = site.run_once(ns, gw, "dave", before)
    assert (code, res["outcome"]) == (3, "isolate"), res
    assert any("forwarding" in json.dumps(r) for r in res.get("remediation", [])) or \
        "ip_forward" in json.dumps(res), res
    code, res = site.run_once(ns, gw, "dave", after)
    assert (code, res["outcome"]) == (0, "allow"), res
    sessions = _device_sessions(site, device)
    recs = [_rec(s) for s in sessions]
    assert sorted(recs) == ["allow", "isolate"], sessions
    assert _rec(_endpoints(site)[device]) == "allow"


def test_policy_reload_moves_endpoint(site: Site, tmp_path: Path) -> None:
    """Scenario 4: ``nea-gateway reload`` with a stricter policy (ssh port 22 now isolates):
    the same compliant device, re-authenticating, lands in the isolate pool.

    IKEv2 cannot send SRETRY to an established IKE_SA (PT-EAP ended with IKE_AUTH); the
    daemon's reload says how many live assessments it affects. SRETRY itself is exercised
    over PT-TLS."""
    device = "5cenar10000000000000000000000004"
    profile = write_profile(tmp_path / "p.toml", "compliant", id=device)
    ns, gw = site.client()
    code, res = site.run_once(ns, gw, "erin", profile)
    assert (code, res["outcome"]) == (0, "allow"), res
    original = site.policy.read_text()
    site.policy.write_text(
        original
        + '\n[policies.no-ssh]\ntype = "TCPBL"\nargument = "22"\nrec_fail = "isolate"\n'
        + '\n[[enforcements]]\npolicy = "no-ssh"\ngroup = "default"\n'
    )
    try:
        r = site.control("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        code, res = site.run_once(ns, gw, "erin", profile)
        assert (code, res["outcome"]) == (3, "isolate"), res
        assert res["virtual_ips"][0].startswith("10.98.0."), res
    finally:
        site.policy.write_text(original)
        site.control("reload")
    recs = [_rec(s) for s in _device_sessions(site, device)]
    assert sorted(recs) == ["allow", "isolate"], recs
    assert "no-ssh" in json.dumps(nea_report(site.db_url, "policies"))


def _radius(site: Site, *args: str) -> dict[str, Any]:
    r = subprocess.run(
        site.gw_ns.cmd(sys.executable, str(HERE / "radius_peer.py"), "--port", "1812",
                       "--secret", RADIUS_SECRET, "--ca", str(site.ca.cert_path), *args),
        capture_output=True, text=True, env=ENV, timeout=60, check=False,
    )
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{site.log_tail()}"
    result: dict[str, Any] = json.loads(r.stdout)
    return result


@pytest.mark.parametrize("method", ["ttls", "peap"])
def test_dot1x_endpoint_lands_in_quarantine_vlan(site: Site, method: str) -> None:
    """Scenario 7: an 802.1X supplicant (our EAP peer, PT-EAP inside TTLS/PEAP) through
    RADIUS: the isolated one gets VLAN 99 / Filter-Id quarantine, the compliant one VLAN 10."""
    user = {"ttls": "frank", "peap": "grace"}[method]
    res = _radius(site, "--user", user, "--method", method,
                  "--profile", str(PROFILES / "forwarding.toml"))
    assert res["code"] == "Access-Accept", res
    assert res["tunnel_private_group_id"] == "99" and res["filter_id"] == "quarantine", res
    assert res["tunnel_type"] == 13 and res["tunnel_medium_type"] == 6, res
    assert res["mppe"], res
    res = _radius(site, "--user", user, "--method", method,
                  "--profile", str(PROFILES / "compliant.toml"))
    assert res["code"] == "Access-Accept", res
    assert res["tunnel_private_group_id"] == "10" and res["filter_id"] == "employees", res
    rows = _sessions(site)
    mine = [r for r in rows if _identity(r) == user]
    assert sorted(_rec(r) for r in mine) == ["allow", "isolate"], mine


@pytest.mark.parametrize(("fault", "expect"), [
    ("version", "version_not_supported"),
    ("noskip", "unsupported_mandatory_message"),
])
def test_pb_tnc_errors_fail_cleanly(site: Site, fault: str, expect: str) -> None:
    """Scenario 5: a PB-TNC batch of version 3, and a PB-TNC message of an unknown type with
    NOSKIP set, from our EAP peer (PT-EAP in TTLS over RADIUS): the gateway answers with a
    PB-TNC error (Version Not Supported / Unsupported Mandatory Message), the conversation
    ends in Access-Reject, and the daemon keeps serving."""
    user = "heidi"
    before = [r for r in _sessions(site) if _identity(r) == user]
    res = _radius(site, "--user", user, "--method", "ttls",
                  "--profile", str(PROFILES / "compliant.toml"), "--fault", fault)
    assert res["code"] == "Access-Reject", res
    assert expect in " ".join(res["pb_errors"]).lower(), res
    assert res["tunnel_private_group_id"] is None and not res["mppe"], res
    assert site.daemon is not None and site.daemon.poll() is None
    # the refused first batch started no assessment: no evidence session, so no verdict
    assert [r for r in _sessions(site) if _identity(r) == user] == before
    ok = _radius(site, "--user", user, "--method", "ttls",
                 "--profile", str(PROFILES / "compliant.toml"))
    assert ok["code"] == "Access-Accept" and not ok["pb_errors"], ok
    after = [r for r in _sessions(site) if _identity(r) == user]
    assert len(after) == len(before) + 1 and _rec(after[-1]) == "allow", after


def test_session_records_virtual_ip(site: Site, tmp_path: Path) -> None:
    """The evidence session of an IKEv2 endpoint carries the virtual IP it was given
    (gateway/daemon/service.py binds it once the IKE_SA is established)."""
    ns, gw = site.client()
    code, res = site.run_once(ns, gw, "ivan", PROFILES / "compliant.toml")
    assert code == 0, res
    (vip,) = res["virtual_ips"]
    (row,) = [r for r in _sessions(site) if _identity(r) == "ivan"]
    assert row["address"] == vip, row
