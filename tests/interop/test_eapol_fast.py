"""wpa_supplicant's eapol_test against our EAP-FAST server behind the RADIUS front-end
(``python -m gateway.radius``): PAC provisioning (fast_provisioning=1 anonymous, =2
authenticated), resumption with the stored PAC (the server logs the abbreviated handshake),
inner MS-CHAPv2 and GTC, a foreign PAC leading to new provisioning, MPPE keys checked by
eapol_test each time an Access-Accept carries them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.certs import CertFactory, Issued
from tests.harness.eapol_test import EapolResult, run_eapol_test
from tests.harness.tools import require
from tests.interop.radius_proc import start_radius_server

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


# The server with a corrupted Compound MAC (tamper test): every byte of the MAC it sends flipped.
TAMPERING = """
import runpy, sys
import ike.eap_fast.method as m
honest = m.EapFastServer._binding_mac
def tampering(self, cmk, data):
    return bytes(b ^ 0x5A for b in honest(self, cmk, data))
m.EapFastServer._binding_mac = tampering
sys.argv = ["gateway.radius", *sys.argv[1:]]
runpy.run_module("gateway.radius", run_name="__main__", alter_sys=True)
"""


def _server(
    workdir: Path,
    inner: str,
    pac_lifetime: int = 86400,
    *,
    pac_refresh: int = 3600,
    tamper: bool = False,
    pac_keys: tuple[str, ...] = (),
) -> Iterator[Server]:
    require("eapol_test")
    certs = CertFactory(workdir / f"certs-{time.monotonic_ns()}")
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
fast_pac_lifetime = {pac_lifetime}
fast_pac_refresh = {pac_refresh}
fast_pac_keys = {list(pac_keys)!r}

[users]
bob = "hello"

[tls]
cert = "{cert.chain_path}"
key = "{cert.key_path}"
"""
    entry = ("-c", TAMPERING) if tamper else ("-m", "gateway.radius")
    proc, port, _, log = start_radius_server(workdir, config, entry)
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


@pytest.fixture(scope="module")
def short_pac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(
        tmp_path_factory.mktemp("fast-short"), "mschapv2", pac_lifetime=4, pac_refresh=3
    )


@pytest.fixture(scope="module")
def tampering_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory.mktemp("fast-tamper"), "mschapv2", tamper=True)


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


@pytest.mark.parametrize("prov", [1, 3])
def test_anonymous_provisioning_then_resumption(
    mschap_server: Server, tmp_path: Path, prov: int
) -> None:
    # fast_provisioning=3 offers both; wpa_supplicant lists the ADH suite first.
    pac = tmp_path / "pac"
    block = _block(mschap_server, pac, prov, "MSCHAPV2")
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


@pytest.mark.slow
def test_expired_pac_leads_to_new_provisioning(short_pac_server: Server, tmp_path: Path) -> None:
    pac = tmp_path / "pac"
    block = _block(short_pac_server, pac, 2, "MSCHAPV2")
    _ok(short_pac_server.eapol(block))
    first = pac.read_bytes()
    time.sleep(4.5)  # the PAC (lifetime 4 s) has expired
    before = short_pac_server.log_text().count(RESUMED)
    _ok(short_pac_server.eapol(block))
    assert short_pac_server.log_text().count(RESUMED) == before
    assert "PAC-Opaque not usable" in short_pac_server.log_text()
    assert pac.read_bytes() != first


def test_tampered_crypto_binding_fails(tampering_server: Server, tmp_path: Path) -> None:
    result = tampering_server.eapol(_block(tampering_server, tmp_path / "pac", 2, "MSCHAPV2"))
    assert not result.success
    assert "Compound MAC did not match" in result.output, result.output[-5000:]
    assert not (tmp_path / "pac").exists() or "PAC-Acknowledgement" not in result.output


@pytest.mark.slow
def test_pac_refreshed_before_expiry(short_pac_server: Server, tmp_path: Path) -> None:
    pac = tmp_path / "pac"
    block = _block(short_pac_server, pac, 2, "MSCHAPV2")
    _ok(short_pac_server.eapol(block))
    first = pac.read_bytes()
    time.sleep(1.5)  # less than fast_pac_refresh (3 s) of the 4 s left: resume and refresh
    before = short_pac_server.log_text().count(RESUMED)
    result = short_pac_server.eapol(block)
    _ok(result)
    assert short_pac_server.log_text().count(RESUMED) == before + 1
    assert "PAC refreshing completed successfully" in result.output, result.output[-5000:]
    assert pac.read_bytes() != first


def test_pac_survives_a_restart_with_configured_keys(tmp_path: Path) -> None:
    """fast_pac_keys: a restarted server still opens its PACs; after a rotation (new key
    first, old key second) too; a server without the old key provisions anew."""
    old, new = "11" * 32, "22" * 32
    pac = tmp_path / "pac"
    runs = [((old,), False), ((old,), True), ((new, old), True), ((new,), False)]
    for n, (keys, resumed) in enumerate(runs):
        gen = _server(tmp_path / f"run{n}", "mschapv2", pac_keys=keys)
        server = next(gen)
        try:
            block = _block(server, pac, 2, "MSCHAPV2")
            _ok(server.eapol(block))
            assert (RESUMED in server.log_text()) is resumed, server.log_text()[-3000:]
        finally:
            gen.close()
