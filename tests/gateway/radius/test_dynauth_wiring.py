"""``[dynauth]`` in the RADIUS configuration and ``gateway.radius.listen`` wiring the
accounting recorder and the DynamicAuthorizer to the engine's events."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.radius import listen, parse_config
from gateway.radius.accounting import MemoryAccountingSink, SessionKey
from gateway.radius.config import ConfigError, DynauthSettings
from gateway.radius.dynauth import DynamicAuthorizer, EndpointKey
from radius import (
    AccessAccepted,
    AccountingRecord,
    AcctStatusType,
    AttributeType,
    IntegerAttribute,
    Verdict,
)

REPO = Path(__file__).resolve().parents[3]

BASE: dict[str, Any] = {
    "radius": {
        "listen": "127.0.0.1",
        "auth_port": 0,
        "acct_port": 0,
        "clients": [{"address": "127.0.0.1/32", "secret": "s3cret"}],
    },
    "eap": {"methods": ["md5"]},
    "users": {"bob": "hello"},
    "vlans": {"allow": "10", "isolate": "99"},
}


def _config(**dynauth: Any) -> Any:
    data = dict(BASE)
    if dynauth:
        data["dynauth"] = dynauth
    return parse_config(data, Path("."))


def test_dynauth_is_off_without_its_table() -> None:
    assert _config().dynauth is None


def test_dynauth_settings_and_defaults() -> None:
    assert _config(port=3799).dynauth == DynauthSettings()
    settings = _config(
        port=1700, listen="127.0.0.1", timeout=0.5, tries=5, fallback_disconnect=False
    ).dynauth
    assert settings == DynauthSettings(1700, "127.0.0.1", 0.5, 5, False)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"port": 0}, "dynauth.port"),
        ({"port": "3799"}, "dynauth.port must be a int"),
        ({"timeout": 0}, "dynauth.timeout"),
        ({"timeout": "2"}, "dynauth.timeout must be a number"),
        ({"tries": 0}, "dynauth.tries"),
        ({"fallback_disconnect": "yes"}, "dynauth.fallback_disconnect"),
    ],
)
def test_dynauth_errors_name_the_key(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**bad)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.udp: list[tuple[int, Any, str]] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> Any:
        self.udp.append((port, protocol, interface))
        return object()


def test_listen_wires_accounting_and_dynauth_to_the_events() -> None:
    reactor = FakeReactor()
    seen: list[object] = []
    sink = MemoryAccountingSink()
    config = _config(port=1700, listen="127.0.0.1")
    service, ports = listen(config, reactor, on_event=seen.append, accounting=sink)
    assert len(ports) == 2
    assert [(port, interface) for port, _, interface in reactor.udp] == [
        (0, "127.0.0.1"),  # the CoA socket: ephemeral source port
        (0, "127.0.0.1"),
        (0, "127.0.0.1"),
    ]
    assert service.dynauth_port is not None
    authorizer = service.dynauth
    assert isinstance(authorizer, DynamicAuthorizer)
    assert authorizer.port == 1700 and authorizer.policy == config.policy
    assert authorizer.secret_for("127.0.0.1") == b"s3cret"
    assert authorizer.secret_for("192.0.2.1") is None
    assert service.on_event is not None

    accepted = AccessAccepted(
        "c", ("127.0.0.1", 1), "bob", "02-00-00-00-00-01", Verdict.ALLOW, "10", None, None, True
    )
    start = AccountingRecord(
        "c",
        ("127.0.0.1", 2),
        AcctStatusType.START,
        "S1",
        "bob",
        "02-00-00-00-00-01",
        None,
        None,
        None,
        None,
        (IntegerAttribute(AttributeType.ACCT_STATUS_TYPE, AcctStatusType.START),),
    )
    service.on_event(accepted)
    service.on_event(start)
    assert seen == [accepted, start]  # the caller's handler still sees everything
    key = EndpointKey("127.0.0.1", "02-00-00-00-00-01")
    assert authorizer.sessions[key].acct_session_id == "S1"
    assert service.accounting is not None
    (session,) = sink.sessions.values()
    assert session.key == SessionKey("127.0.0.1", "S1")
    assert session.started_at.tzinfo is dt.UTC


def test_listen_without_extras_keeps_the_plain_event_hook() -> None:
    reactor = FakeReactor()
    seen: list[object] = []
    service, _ports = listen(_config(), reactor, on_event=seen.append)
    assert service.on_event == seen.append
    assert service.dynauth is None and service.accounting is None
    assert len(reactor.udp) == 2


def test_server_process_starts_with_dynauth(tmp_path: Path) -> None:
    conf = tmp_path / "radius.toml"
    conf.write_text(
        """
[radius]
listen = "127.0.0.1"
auth_port = 0
acct_port = 0
[[radius.clients]]
address = "127.0.0.1/32"
secret = "s3cret"
[eap]
methods = ["md5"]
[users]
bob = "hello"
[dynauth]
listen = "127.0.0.1"
port = 3799
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.radius", "--config", str(conf)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline()
        assert line.startswith("listening auth=127.0.0.1:"), line + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
