"""wpa_supplicant's eapol_test against the project's RADIUS server (``python -m gateway.radius``).

The server runs as a subprocess on 127.0.0.1 with kernel-chosen ports (no root, no
namespaces); each test runs eapol_test once and checks SUCCESS / FAILURE and, for methods
with keys, ``MPPE keys OK`` (eapol_test compares the MS-MPPE keys in Access-Accept with the
MSK it derived itself).  Every method the tests use must be in
``gateway.radius.available_methods()``; a missing one fails the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.radius import available_methods
from tests.harness.certs import CertFactory, Issued
from tests.harness.eapol_test import EapolResult, run_eapol_test
from tests.harness.tools import require
from tests.interop.radius_proc import start_radius_server

SECRET = "interop-secret"
USERS = {"bob": "hello", "carol": "s3cret pass"}


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    acct_port: int
    workdir: Path
    ca: Issued
    client: Issued
    rogue_client: Issued
    rogue_ca: Issued
    log: Path

    def eapol(
        self, block: str, *, secret: str = SECRET, keys: bool = True, timeout: int = 10
    ) -> EapolResult:
        require("eapol_test")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return run_eapol_test(
            block,
            port=self.port,
            secret=secret,
            workdir=self.workdir,
            timeout=timeout,
            extra_args=() if keys else ("-n",),
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require("eapol_test")
    workdir = tmp_path_factory.mktemp("eapol-radius")
    certs = CertFactory(workdir / "certs")
    ca = certs.ca("radius-ca")
    server_cert = certs.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    client = certs.issue(ca, "alice", san_email=("alice@example.test",), eku=("clientAuth",))
    rogue_ca = certs.ca("rogue-ca")
    rogue_client = certs.issue(rogue_ca, "alice", name="rogue-alice", eku=("clientAuth",))
    methods = [
        m for m in ("tls", "peap", "ttls", "mschapv2", "md5", "gtc") if m in available_methods()
    ]
    users = "\n".join(f'{name} = "{password}"' for name, password in USERS.items())
    config = f"""
[radius]
listen = "127.0.0.1"
auth_port = 0
acct_port = 0
session_timeout = 3600

[[radius.clients]]
address = "127.0.0.1/32"
secret = "{SECRET}"
name = "loopback"

[eap]
methods = {methods!r}

[users]
{users}

[tls]
cert = "{server_cert.chain_path}"
key = "{server_cert.key_path}"
ca = ["{ca.cert_path}"]

[vlans]
allow = "10"
allow_filter_id = "staff"
"""
    proc, port, acct_port, log = start_radius_server(workdir, config)
    try:
        yield Server(proc, port, acct_port, workdir, ca, client, rogue_client, rogue_ca, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _needs(method: str) -> None:
    # Every method is in the tree: one that goes missing is a failure, never a skip.
    assert method in available_methods(), f"EAP method {method} missing: {available_methods()}"


def _ok(result: EapolResult, *, keys: bool) -> None:
    assert result.success, result.output[-4000:]
    if keys:
        assert result.mppe_ok, result.output[-4000:]
    else:
        assert result.mppe_counts == (0, 0), result.output[-4000:]


def test_eap_md5(server: Server) -> None:
    _needs("md5")
    _ok(server.eapol('eap=MD5\nidentity="bob"\npassword="hello"', keys=False), keys=False)


def test_eap_mschapv2_standalone(server: Server) -> None:
    _needs("mschapv2")
    _ok(server.eapol('eap=MSCHAPV2\nidentity="carol"\npassword="s3cret pass"'), keys=True)


def test_eap_gtc_standalone(server: Server) -> None:
    _needs("gtc")
    _ok(server.eapol('eap=GTC\nidentity="bob"\npassword="hello"', keys=False), keys=False)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_eap_tls(server: Server, version: str) -> None:
    _needs("tls")
    phase1 = "tls_disable_tlsv1_3=1" if version == "1.2" else "tls_disable_tlsv1_3=0"
    result = server.eapol(
        f'eap=TLS\nidentity="alice"\nca_cert="{server.ca.cert_path}"\n'
        f'client_cert="{server.client.cert_path}"\nprivate_key="{server.client.key_path}"\n'
        f'phase1="{phase1}"'
    )
    _ok(result, keys=True)
    assert f"TLSv{version}" in result.output


def test_wrong_password_fails_cleanly(server: Server) -> None:
    _needs("md5")
    result = server.eapol('eap=MD5\nidentity="bob"\npassword="nope"', keys=False)
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output
    _ok(server.eapol('eap=MD5\nidentity="bob"\npassword="hello"', keys=False), keys=False)


def test_unknown_user_fails_cleanly(server: Server) -> None:
    _needs("mschapv2")
    result = server.eapol('eap=MSCHAPV2\nidentity="mallory"\npassword="x"')
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output


@pytest.mark.slow
def test_wrong_shared_secret_gets_no_answer(server: Server) -> None:
    _needs("md5")
    result = server.eapol(
        'eap=MD5\nidentity="bob"\npassword="hello"', secret="wrong", keys=False, timeout=3
    )
    assert not result.success
    # The server drops the request (bad Message-Authenticator): no RADIUS answer at all.
    assert "Sending RADIUS message to authentication server" in result.output
    assert "Received RADIUS message" not in result.output
    assert "Message-Authenticator does not verify" in server.log.read_text()
    _ok(server.eapol('eap=MD5\nidentity="bob"\npassword="hello"', keys=False), keys=False)


def test_untrusted_server_certificate_fails(server: Server) -> None:
    _needs("tls")
    result = server.eapol(
        f'eap=TLS\nidentity="alice"\nca_cert="{server.rogue_ca.cert_path}"\n'
        f'client_cert="{server.client.cert_path}"\nprivate_key="{server.client.key_path}"'
    )
    assert not result.success
    assert server.proc.poll() is None


def test_untrusted_client_certificate_is_rejected(server: Server) -> None:
    _needs("tls")
    result = server.eapol(
        f'eap=TLS\nidentity="alice"\nca_cert="{server.ca.cert_path}"\n'
        f'client_cert="{server.rogue_client.cert_path}"\n'
        f'private_key="{server.rogue_client.key_path}"'
    )
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output
    _ok(server.eapol('eap=MD5\nidentity="bob"\npassword="hello"', keys=False), keys=False)


TTLS_PHASE2 = {
    "pap": "auth=PAP",
    "chap": "auth=CHAP",
    "mschapv2": "auth=MSCHAPV2",
    "eap-md5": "autheap=MD5",
    "eap-mschapv2": "autheap=MSCHAPV2",
    "eap-gtc": "autheap=GTC",
}


@pytest.mark.parametrize("inner", list(TTLS_PHASE2))
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_eap_ttls(server: Server, inner: str, version: str) -> None:
    _needs("ttls")
    phase1 = "tls_disable_tlsv1_3=1" if version == "1.2" else "tls_disable_tlsv1_3=0"
    result = server.eapol(
        f'eap=TTLS\nidentity="carol"\nanonymous_identity="anonymous"\n'
        f'password="s3cret pass"\nca_cert="{server.ca.cert_path}"\n'
        f'phase1="{phase1}"\nphase2="{TTLS_PHASE2[inner]}"'
    )
    _ok(result, keys=True)
    assert f"TLSv{version}" in result.output


@pytest.mark.parametrize("inner", ["pap", "mschapv2", "eap-md5"])
def test_eap_ttls_wrong_password_fails(server: Server, inner: str) -> None:
    _needs("ttls")
    result = server.eapol(
        f'eap=TTLS\nidentity="carol"\nanonymous_identity="anonymous"\n'
        f'password="wrong"\nca_cert="{server.ca.cert_path}"\nphase2="{TTLS_PHASE2[inner]}"'
    )
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output


@pytest.mark.parametrize("phase2", ["MSCHAPV2", "GTC"])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_peap_with_cryptobinding(server: Server, phase2: str, version: str) -> None:
    _needs("peap")
    phase1 = "tls_disable_tlsv1_3=1" if version == "1.2" else "tls_disable_tlsv1_3=0"
    result = server.eapol(
        f'eap=PEAP\nidentity="carol"\nanonymous_identity="anonymous"\n'
        f'password="s3cret pass"\nca_cert="{server.ca.cert_path}"\n'
        f'phase1="peapver=0 crypto_binding=2 {phase1}"\nphase2="auth={phase2}"',
        timeout=5,
    )
    _ok(result, keys=True)
    assert "EAP-PEAP: Valid cryptobinding TLV received" in result.output
    assert f"TLSv{version}" in result.output


def test_peap_wrong_password_fails(server: Server) -> None:
    _needs("peap")
    result = server.eapol(
        f'eap=PEAP\nidentity="carol"\npassword="wrong"\nca_cert="{server.ca.cert_path}"\n'
        'phase1="peapver=0 crypto_binding=2 tls_disable_tlsv1_3=0"\nphase2="auth=MSCHAPV2"'
    )
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output


def _accept_attributes(output: str) -> list[tuple[int, str]]:
    """(type, value) of the attributes of the last Access-Accept eapol_test printed."""
    block = output.rsplit("(Access-Accept)", 1)[1].split("STA ", 1)[0]
    out: list[tuple[int, str]] = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("Attribute "):
            out.append((int(line.split()[1]), ""))
        elif line.startswith("Value: ") and out:
            out[-1] = (out[-1][0], line[len("Value: ") :])
    return out


def test_access_accept_attributes_seen_by_the_nas(server: Server) -> None:
    _needs("mschapv2")
    result = server.eapol('eap=MSCHAPV2\nidentity="carol"\npassword="s3cret pass"')
    _ok(result, keys=True)
    attributes = _accept_attributes(result.output)
    assert attributes[0][0] == 80  # Message-Authenticator first (Blast-RADIUS)
    values = dict(attributes)
    assert values[27] == "3600"  # Session-Timeout
    assert values[64] == "0000000d"  # Tunnel-Type: tag 0, VLAN (13)
    assert values[65] == "00000006"  # Tunnel-Medium-Type: tag 0, IEEE-802 (6)
    assert values[81] == "3130"  # Tunnel-Private-Group-Id "10" (eapol_test prints hex)
    assert 11 in values  # Filter-Id (eapol_test does not print its value)


def test_repeated_authentications_in_one_run(server: Server) -> None:
    """eapol_test -r 5: six back-to-back PEAP authentications from one NAS port, RADIUS
    identifiers running on; every one must succeed with matching keys."""
    _needs("peap")
    require("eapol_test")
    result = run_eapol_test(
        f'eap=PEAP\nidentity="carol"\npassword="s3cret pass"\nca_cert="{server.ca.cert_path}"\n'
        'phase1="peapver=0 crypto_binding=2"\nphase2="auth=MSCHAPV2"',
        port=server.port,
        secret=SECRET,
        workdir=server.workdir,
        timeout=20,
        extra_args=("-r", "5"),
    )
    assert result.success, result.output[-4000:]
    assert result.mppe_counts == (6, 0), result.output[-4000:]


def test_eap_tls_identity_not_in_certificate_is_rejected(server: Server) -> None:
    _needs("tls")
    result = server.eapol(
        f'eap=TLS\nidentity="mallory"\nca_cert="{server.ca.cert_path}"\n'
        f'client_cert="{server.client.cert_path}"\nprivate_key="{server.client.key_path}"'
    )
    assert not result.success
    assert "CTRL-EVENT-EAP-FAILURE" in result.output
