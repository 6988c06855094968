"""FreeRADIUS's ``radclient`` (Debian freeradius-utils) as an independent NAS against
``python -m gateway.radius``: accounting, Status-Server, and Blast-RADIUS protection (an
Access-Request without Message-Authenticator gets no answer)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from radius import AttributeType
from tests.harness.tools import find, skip_or_fail

REPO = Path(__file__).resolve().parents[3]
SECRET = "radclient-secret"


@dataclass
class Running:
    auth: int
    acct: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("radclient")
    conf = workdir / "radius.toml"
    conf.write_text(
        f"""
[radius]
listen = "127.0.0.1"
auth_port = 0
acct_port = 0
[[radius.clients]]
address = "127.0.0.1"
secret = "{SECRET}"
[eap]
methods = ["md5"]
[users]
bob = "hello"
"""
    )
    log = workdir / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.radius", "--config", str(conf)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening"), log.read_text()
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        yield Running(
            int(fields["auth"].rsplit(":", 1)[1]), int(fields["acct"].rsplit(":", 1)[1]), log
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def radclient(port: int, kind: str, attributes: str, secret: str = SECRET) -> str:
    tool = find("radclient")
    if tool is None:
        skip_or_fail("radclient not installed (Debian package freeradius-utils)")
    assert tool is not None
    result = subprocess.run(
        [str(tool), "-x", "-r", "1", "-t", "1", f"127.0.0.1:{port}", kind, secret],
        input=attributes,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


def test_accounting_start_and_stop_are_answered(server: Running) -> None:
    for status in ("Start", "Stop"):
        out = radclient(
            server.acct,
            "acct",
            f'Acct-Status-Type = {status}\nAcct-Session-Id = "0001"\nUser-Name = "bob"\n',
        )
        assert "Received Accounting-Response" in out, out
    time.sleep(0.1)
    assert server.log.read_text().count("accounting") >= 2


def test_status_server_is_answered(server: Running) -> None:
    out = radclient(server.auth, "status", "Message-Authenticator = 0x00\n")
    assert "Received Access-Accept" in out, out


def test_access_request_without_message_authenticator_is_dropped(server: Running) -> None:
    out = radclient(server.auth, "auth", 'User-Name = "bob"\nUser-Password = "hello"\n')
    assert "No reply from server" in out, out
    assert "without Message-Authenticator" in server.log.read_text()


def test_non_eap_request_is_rejected_with_reply_message(server: Running) -> None:
    out = radclient(
        server.auth,
        "auth",
        'User-Name = "bob"\nUser-Password = "hello"\nMessage-Authenticator = 0x00\n',
    )
    assert "Received Access-Reject" in out, out
    assert "Reply-Message" in out
    assert "invalid Message-Authenticator" not in out


def test_wrong_secret_gets_no_answer(server: Running) -> None:
    out = radclient(
        server.acct, "acct", 'Acct-Status-Type = Start\nUser-Name = "bob"\n', secret="wrong"
    )
    assert "No reply from server" in out, out


@pytest.mark.parametrize(("kind", "ack"), [("coa", "CoA-ACK"), ("disconnect", "Disconnect-ACK")])
def test_radclient_dynamic_authorization_against_our_codec(kind: str, ack: str) -> None:
    """radclient plays the gateway, our codec the NAS: its CoA/Disconnect-Request (with a
    Message-Authenticator) must verify here, and our ACK must verify there."""
    import socket
    import threading

    from radius import Code, Packet, encode_response, verify_request

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    seen: list[Packet] = []

    def nas() -> None:
        data, addr = sock.recvfrom(4096)
        request = verify_request(data, SECRET.encode())
        seen.append(request)
        code = Code.COA_ACK if request.code == Code.COA_REQUEST else Code.DISCONNECT_ACK
        reply = Packet(code, request.identifier)
        sock.sendto(encode_response(reply, request.authenticator, SECRET.encode()), addr)

    thread = threading.Thread(target=nas, daemon=True)
    thread.start()
    try:
        out = radclient(
            sock.getsockname()[1],
            kind,
            'User-Name = "bob"\nAcct-Session-Id = "0001"\nMessage-Authenticator = 0x00\n',
        )
        thread.join(timeout=10)
    finally:
        sock.close()
    assert seen and seen[0].text(AttributeType.ACCT_SESSION_ID) == "0001"
    assert seen[0].get(AttributeType.MESSAGE_AUTHENTICATOR) is not None
    assert f"Received {ack}" in out, out
