"""wpa_supplicant's eapol_test against our EAP-FAST server behind the RADIUS front-end
(``python -m gateway.radius``): PAC provisioning (fast_provisioning=1 anonymous, =2
authenticated), resumption with the stored PAC (the server logs the abbreviated handshake),
inner MS-CHAPv2 and GTC, a foreign PAC leading to new provisioning, MPPE keys checked by
eapol_test each time an Access-Accept carries them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.certs import CertFactory, Issued
from tests.harness.eapol_test import EapolResult, run_eapol_test
from tests.harness.tools import require

REPO = Path(__file__).resolve().parents[2]
SECRET = "fast-secret"
RESUMED = "abbreviated handshake with PAC"


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    workdir: Path
    ca: Issued
    log: Path

    def eapol(self, block: str, *, timeout: int = 20) -> EapolResult:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return run_eapol_test(
            block, port=self.port, secret=SECRET, workdir=self.workdir, timeout=timeout
        )

    def log_text(self) -> str:
        return self.log.read_text()


def _start(workdir: Path, config: str) -> tuple[subprocess.Popen[str], int, Path]:
    conf = workdir / "radius.toml"
    conf.write_text(config)
    log = workdir / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.radius", "--config", str(conf), "--debug"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening") or (not line and proc.poll() is not None):
            break
    if not line.startswith("listening"):
        proc.kill()
        raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    return proc, int(fields["auth"].rsplit(":", 1)[1]), log


def _server(workdir: Path, inner: str) -> Iterator[Server]:
    require("eapol_test")
    certs = CertFactory(workdir / "certs")
    ca = certs.ca("fast-ca", key_type="rsa", rsa_bits=2048)
    cert = certs.issue(
        ca,
        "radius.test",
        san_dns=("radius.test",),
        eku=("serverAuth",),
        key_type="rsa",
        rsa_bits=2048,
    )
    config = f"""
[radius]
listen = "127.0.0.1"
auth_port = 0
acct_port = 0

[[radius.clients]]
address = "127.0.0.1/32"
secret = "{SECRET}"

[eap]
methods = ["fast"]
inner_methods = ["{inner}"]
fast_a_id = "nea-gateway-test"

[users]
bob = "hello"

[tls]
cert = "{cert.chain_path}"
key = "{cert.key_path}"
max_version = "1.2"
"""
    proc, port, log = _start(workdir, config)
    try:
        yield Server(proc, port, workdir, ca, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def mschap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("fast-mschap"), "mschapv2")


@pytest.fixture(scope="module")
def gtc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("fast-gtc"), "gtc")


def _block(server: Server, pac: Path, prov: int, inner: str, password: str = "hello") -> str:
    return (
        f'eap=FAST\nidentity="bob"\npassword="{password}"\n'
        f'phase1="fast_provisioning={prov}"\nphase2="auth={inner}"\n'
        f'pac_file="{pac}"\nca_cert="{server.ca.cert_path}"'
    )


def _ok(result: EapolResult) -> None:
    assert result.success, result.output[-5000:]
    assert result.mppe_ok, result.output[-5000:]


def _resumes(server: Server, block: str) -> None:
    before = server.log_text().count(RESUMED)
    _ok(server.eapol(block))
    assert server.log_text().count(RESUMED) == before + 1, server.log_text()[-3000:]


def test_anonymous_provisioning_then_resumption(mschap_server: Server, tmp_path: Path) -> None:
    pac = tmp_path / "pac"
    block = _block(mschap_server, pac, 1, "MSCHAPV2")
    first = mschap_server.eapol(block)
    # RFC 5422 3.2.3: anonymous provisioning ends in EAP-Failure once the PAC is delivered.
    assert not first.success and pac.exists(), first.output[-5000:]
    assert "PAC-Acknowledgement" in first.output
    assert "ADH-AES128-SHA (anonymous provisioning)" in mschap_server.log_text()
    _resumes(mschap_server, block)
    _resumes(mschap_server, block)


def test_authenticated_provisioning_then_resumption(mschap_server: Server, tmp_path: Path) -> None:
    pac = tmp_path / "pac"
    block = _block(mschap_server, pac, 2, "MSCHAPV2")
    _ok(mschap_server.eapol(block))
    assert pac.exists()
    _resumes(mschap_server, block)


def test_gtc_provisioning_then_resumption(gtc_server: Server, tmp_path: Path) -> None:
    pac = tmp_path / "pac"
    block = _block(gtc_server, pac, 2, "GTC")
    _ok(gtc_server.eapol(block))
    _resumes(gtc_server, block)


def test_wrong_password_is_rejected(mschap_server: Server, tmp_path: Path) -> None:
    result = mschap_server.eapol(_block(mschap_server, tmp_path / "pac", 2, "MSCHAPV2", "nope"))
    assert not result.success


def test_foreign_pac_leads_to_new_provisioning(
    mschap_server: Server, gtc_server: Server, tmp_path: Path
) -> None:
    # A PAC issued by the GTC server (another keyring, same A-ID) does not open on the
    # MS-CHAPv2 server: full handshake, authentication and a new PAC, not a failure.
    pac = tmp_path / "pac"
    _ok(gtc_server.eapol(_block(gtc_server, pac, 2, "GTC")))
    foreign = pac.read_bytes()
    block = _block(mschap_server, pac, 2, "MSCHAPV2")
    before = mschap_server.log_text().count(RESUMED)
    _ok(mschap_server.eapol(block))
    assert mschap_server.log_text().count(RESUMED) == before
    assert "PAC-Opaque not usable" in mschap_server.log_text()
    assert pac.read_bytes() != foreign
    _resumes(mschap_server, block)
