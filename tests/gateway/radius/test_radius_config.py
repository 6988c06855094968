"""The TOML configuration of the RADIUS front-end."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.radius import ConfigError, available_methods, build_server, load_config
from radius import VlanAssignment

GOOD = """
[radius]
listen = "127.0.0.1"
auth_port = 11812
acct_port = 11813
session_timeout = 600

[[radius.clients]]
address = "192.0.2.0/24"
secret = "s1"
name = "lab"

[[radius.clients]]
address = "2001:db8::1"
secret = "s2"
require_message_authenticator = false

[eap]
methods = ["md5", "mschapv2"]
inner_methods = ["md5"]

[users]
bob = "hello"

[vlans]
allow = "10"
isolate = "99"
isolate_filter_id = "quarantine"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "radius.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.auth_port == 11812 and config.acct_port == 11813
    assert [c.name for c in config.clients] == ["lab", "2001:db8::1"]
    assert config.clients[0].secret == b"s1"
    assert not config.clients[1].require_message_authenticator
    assert config.methods == ("md5", "mschapv2")
    assert config.inner_methods == ("md5",)
    assert config.policy.session_timeout == 600
    assert config.policy.allow == VlanAssignment("10", None)
    assert config.policy.isolate == VlanAssignment("99", "quarantine")
    assert "hello" not in repr(config)  # secrets stay out of logs
    server = build_server(config)
    assert server.client_for("192.0.2.77") is not None
    assert server.client_for("2001:db8::1") is not None
    assert server.client_for("203.0.113.1") is None


def test_tls_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = GOOD.replace('methods = ["md5", "mschapv2"]', 'methods = ["tls"]') + (
        '\n[tls]\ncert = "certs/s.pem"\nkey = "certs/s.key"\nca = "certs/ca.pem"\n'
    )
    config = load_config(_write(tmp_path, text))
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "certs" / "s.pem"
    assert config.tls.ca == (tmp_path / "certs" / "ca.pem",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[[radius.clients]]", "[[radius.other]]"), "at least one client"),
        (('methods = ["md5", "mschapv2"]', 'methods = ["md5", "leap"]'), "unknown method"),
        (('methods = ["md5", "mschapv2"]', 'methods = ["tls"]'), "[tls] is missing"),
        (('inner_methods = ["md5"]', 'inner_methods = ["tls"]'), "cannot run inside"),
        (('address = "192.0.2.0/24"', 'address = "not-an-address"'), "radius.clients[0]"),
        (('secret = "s1"', 'secret = ""'), "non-empty shared secret"),
        (("auth_port = 11812", "auth_port = 70000"), "0..65535"),
        (('allow = "10"', "allow = 10"), "vlans.allow"),
        (("[users]", "[users]\nmallory = 5"), "users.mallory"),
        (
            (
                'methods = ["md5", "mschapv2"]',
                'methods = ["md5"]\n[tls]\ncert="c"\nkey="k"\nfragment_size=4000',
            ),
            "fragment_size",
        ),
    ],
)
def test_bad_config(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(_write(tmp_path, text))


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, "[radius\n"))


def test_simple_methods_are_available() -> None:
    assert {"md5", "mschapv2", "gtc"} <= set(available_methods())


def test_entry_point_reports_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.radius.__main__ import main

    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "configuration error" in capsys.readouterr().err
