"""``python -m gateway.radius.coa`` over real UDP against a small NAS listener of our own."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radius import (
    AttributeType,
    Code,
    ErrorCause,
    IntegerAttribute,
    Packet,
    RemoteProtocolError,
    encode_response,
    verify_request,
)

REPO = Path(__file__).resolve().parents[3]
SECRET = b"nas-coa-secret"
T = AttributeType


class Nas:
    """Answers Disconnect/CoA for session "live", NAKs others, ignores "silent"."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[Packet] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                request = verify_request(data, SECRET)
            except RemoteProtocolError:
                continue
            self.received.append(request)
            session = request.text(T.ACCT_SESSION_ID)
            if session == "silent":
                continue
            ack, nak = (
                (Code.COA_ACK, Code.COA_NAK)
                if request.code == Code.COA_REQUEST
                else (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK)
            )
            if session == "live":
                answer = Packet(ack, request.identifier)
            else:
                answer = Packet(
                    nak,
                    request.identifier,
                    attributes=(
                        IntegerAttribute(T.ERROR_CAUSE, ErrorCause.SESSION_CONTEXT_NOT_FOUND),
                    ),
                )
            self.sock.sendto(encode_response(answer, request.authenticator, SECRET), addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def nas() -> Iterator[Nas]:
    listener = Nas()
    try:
        yield listener
    finally:
        listener.close()


def _coa(nas: Nas, *args: str, secret: bytes = SECRET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.radius.coa",
            "--nas",
            f"127.0.0.1:{nas.port}",
            "--secret",
            secret.decode(),
            "--timeout",
            "0.3",
            "--tries",
            "2",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_disconnect_acked(nas: Nas) -> None:
    result = _coa(nas, "--disconnect", "--session-id", "live", "--user-name", "bob")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DISCONNECT_ACK"
    (request,) = nas.received
    assert request.code == Code.DISCONNECT_REQUEST
    assert request.text(T.USER_NAME) == "bob"
    stamp = request.integer(T.EVENT_TIMESTAMP)
    assert stamp is not None and abs(stamp - time.time()) < 60


def test_coa_with_vlan_naked_with_error_cause(nas: Nas) -> None:
    result = _coa(nas, "--coa", "--session-id", "gone", "--vlan", "99", "--filter-id", "q")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == "COA_NAK Error-Cause=503"
    (request,) = nas.received
    assert request.code == Code.COA_REQUEST
    group = request.get(T.TUNNEL_PRIVATE_GROUP_ID)
    assert group is not None and group.value == b"99"  # type: ignore[union-attr]
    assert request.text(T.FILTER_ID) == "q"


def test_no_answer_retransmits_then_gives_up(nas: Nas) -> None:
    result = _coa(nas, "--disconnect", "--session-id", "silent")
    assert result.returncode == 2
    assert result.stdout.strip() == "no answer"
    assert len(nas.received) == 2
    assert nas.received[0] == nas.received[1]  # identical retransmission (RFC 5080 2.2.1)


def test_wrong_secret_is_ignored_by_the_nas(nas: Nas) -> None:
    result = _coa(nas, "--disconnect", "--session-id", "live", secret=b"wrong")
    assert result.returncode == 2
    assert nas.received == []
