"""Re-assessment with real processes on loopback: ``nea-endpoint`` (no --once) against a
``nea-gateway`` daemon.  The endpoint starts isolated (outdated OS), its profile is fixed,
then a trigger (SIGUSR1, --watch-profile, or the gateway's ``reassess`` = RFC 4478
AUTH_LIFETIME) makes it re-authenticate: the new verdict is allow, with a virtual IP from
the allow pool, and the gateway keeps only the new IKE_SA (make-before-break)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import (
    NAMES,
    PASSWORD,
    PROFILES,
    REPO,
    GatewayProcess,
    start_gateway,
)
from tests.harness.certs import CertFactory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    f = CertFactory(tmp_path_factory.mktemp("pki"))
    ca = f.ca("ca")
    gw = f.issue(ca, "gw.test", san_dns=NAMES, eku=("serverAuth",))
    g = start_gateway(tmp_path_factory.mktemp("gw"), ca, gw)
    try:
        yield g
    finally:
        g.stop()
        print(g.log()[-3000:])


class Endpoint:
    """A running ``nea-endpoint --json``; :meth:`next_result` reads its next JSON document."""

    def __init__(self, gateway: GatewayProcess, profile: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "gateway.nea_endpoint",
                "--server", f"127.0.0.1:{gateway.port}", "--json", "--timeout", "20",
                "--id", "bob", "--password", PASSWORD, "--ca", str(gateway.ca_path),
                "--eap", "eap-ttls", "--server-id", "ttls.gw.test",
                "--profile", str(profile), *extra,
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._buf = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_result(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        decoder = json.JSONDecoder()
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    doc, end = decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self._buf = text[end:]
                    assert isinstance(doc, dict)
                    return doc
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no result within {timeout} s: {self._buf!r}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"nea-endpoint exited: {self.stop_output()}")
            self._buf += line

    def stop_output(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        assert self.proc.stderr is not None
        return f"rc {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}"


def _sas(gateway: GatewayProcess) -> list[dict[str, Any]]:
    r = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "list-sas", "--json",
         "-c", str(gateway.workdir / "gw.toml")],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    sas = doc["sas"] if isinstance(doc, dict) else doc
    return [s for s in sas if s.get("eap_identity") == "bob" or s.get("remote_eap_id") == "bob"]


def _wait_sas(gateway: GatewayProcess, want: list[str], timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        sas = _sas(gateway)
        if sorted(s["verdict"] for s in sas) == sorted(want) or time.monotonic() > deadline:
            return sas
        time.sleep(0.2)


def _isolated_then(
    gateway: GatewayProcess, tmp_path: Path, trigger: Any, *extra: str
) -> None:
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "outdated-os.toml", profile)
    ep = Endpoint(gateway, profile, *extra)
    try:
        first = ep.next_result()
        assert (first["outcome"], first["verdict"]) == ("isolate", "isolate"), first
        assert first["virtual_ips"][0].startswith("10.99.0.")
        shutil.copy(PROFILES / "compliant.toml", profile)  # remediated
        trigger(ep)
        second = ep.next_result()
        assert (second["outcome"], second["verdict"]) == ("allow", "allow"), second
        assert second["virtual_ips"][0].startswith("10.3.0.")
        assert second["ike"]["spi_i"] != first["ike"]["spi_i"]
        sas = _wait_sas(gateway, ["allow"])
        assert [s["verdict"] for s in sas] == ["allow"], sas
        assert ep.proc.poll() is None, "still connected"
    finally:
        out = ep.stop_output()
    assert ep.proc.returncode == 0, out  # the latest result: allow
    assert _wait_sas(gateway, []) == []


def test_sigusr1_reassesses(gateway: GatewayProcess, tmp_path: Path) -> None:
    _isolated_then(gateway, tmp_path, lambda ep: ep.proc.send_signal(signal.SIGUSR1))


def test_watch_profile_reassesses(gateway: GatewayProcess, tmp_path: Path) -> None:
    _isolated_then(gateway, tmp_path, lambda ep: None, "--watch-profile")


def test_gateway_reassess_auth_lifetime(gateway: GatewayProcess, tmp_path: Path) -> None:
    def ask(ep: Endpoint) -> None:
        r = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", "reassess", "--all",
             "-c", str(gateway.workdir / "gw.toml")],
            capture_output=True, text=True, timeout=30, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr

    _isolated_then(gateway, tmp_path, ask)


def test_reassess_after_seconds(gateway: GatewayProcess, tmp_path: Path) -> None:
    _isolated_then(gateway, tmp_path, lambda ep: None, "--reassess-after", "2")
