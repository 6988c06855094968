"""The quick start on loopback: a directory from ``nea-gateway init`` (posture on), the daemon
run on it, ``nea-endpoint`` with the example profiles, then ``nea-report`` on the evidence
database init created.  Only the ports, the control socket and ``dataplane = "none"`` are
changed in the written ``gateway.toml`` (loopback, no root needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.init import main as init_main
from tests.gateway.daemon.test_daemon_control_cli import REPO, Daemon, _free_udp_ports

pytestmark = [pytest.mark.slow]

PROFILES = REPO / "examples" / "profiles"


def _start(tmp_path: Path, eap: str, *extra: str) -> tuple[Daemon, dict[str, Any]]:
    daemon = Daemon(tmp_path, "gw", "")
    d = daemon.dir
    args = [str(d), "--name", "gw.test", "--listen", "127.0.0.1", "--user", "alice"]
    assert init_main([*args, "--eap", eap, *(extra or ("--no-pool-db",))]) == 0
    text = (d / "gateway.toml").read_text()
    ike = _free_udp_ports(2)
    for old, new in (
        ("port = 500\n", f"port = {ike[0]}\n"),
        ("port_nat_t = 4500\n", f"port_nat_t = {ike[1]}\n"),
        ('socket = "var/nea-gateway.ctl"', 'socket = "ctl.sock"'),
        ('dataplane = "auto"', 'dataplane = "none"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    daemon.config.write_text(text)
    config = tomllib.loads(text)
    config["ike_port"] = ike[0]
    daemon.start()
    return daemon, config


def _endpoint(daemon: Daemon, config: dict[str, Any], eap: str, profile: str) -> Any:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.nea_endpoint",
            "--server",
            f"127.0.0.1:{config['ike_port']}",
            "--id",
            "alice",
            f"--password={config['secrets']['eap-alice']['secret']}",
            "--eap",
            f"eap-{eap}",
            "--ca",
            str(daemon.dir / "certs/ca.crt"),
            "--server-id",
            "gw.test",
            "--profile",
            str(PROFILES / f"{profile}.toml"),
            "--once",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    return proc


@pytest.mark.parametrize(
    ("eap", "extra"), [("ttls", ()), ("peap", ()), ("fast", ()), ("ttls", ("--sql-pools",))]
)
def test_posture_verdicts_and_report(tmp_path: Path, eap: str, extra: tuple[str, ...]) -> None:
    daemon, config = _start(tmp_path, eap, *extra)
    try:
        ok = _endpoint(daemon, config, eap, "compliant")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        result = json.loads(ok.stdout)
        assert result["outcome"] == "allow" and result["virtual_ips"][0].startswith("10.3.0.")
        iso = _endpoint(daemon, config, eap, "forwarding")
        assert iso.returncode == 3, iso.stdout + iso.stderr
        assert json.loads(iso.stdout)["virtual_ips"][0].startswith("10.99.0.")
        denied = _endpoint(daemon, config, eap, "forbidden-port")
        assert denied.returncode == 4, denied.stdout + denied.stderr
    except BaseException:
        print(daemon.log.read_text()[-6000:])
        raise
    finally:
        daemon.stop()
    url = config["nea"]["database"]
    assert url == f"sqlite:///{(daemon.dir / 'var/nea-evidence.db').resolve()}"
    report = subprocess.run(
        [sys.executable, "-m", "gateway.report", "summary", "--db", url, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["figures"]["sessions"] == 3
    by_rec = {r["recommendation"]: r["sessions"] for r in summary["sections"]["by_recommendation"]}
    assert by_rec == {"allow": 1, "isolate": 1, "block": 1}
    if extra:  # the virtual IPs came from init's SQL pools: their leases are in the database
        pool_url = config["pools"]["rw"]["database"]
        leases = subprocess.run(
            [sys.executable, "-m", "gateway.pools.cli", "--db", pool_url, "--leases"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert leases.returncode == 0, leases.stderr
        assert "alice" in leases.stdout and "10.3.0." in leases.stdout
        assert "10.99.0." in leases.stdout
