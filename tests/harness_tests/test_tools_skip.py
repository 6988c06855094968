"""Missing peers skip with the Debian package's name, or fail when CI demands the peers."""

from __future__ import annotations

import pytest

from tests.harness import tools


def test_missing_tool_skips_naming_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tools.REQUIRE_PEERS_ENV, raising=False)
    monkeypatch.setitem(tools.PACKAGES, "no-such-tool-x1", "some-debian-pkg")
    with pytest.raises(pytest.skip.Exception, match=r"no-such-tool-x1 .*some-debian-pkg"):
        tools.require("no-such-tool-x1")


def test_missing_tool_fails_when_peers_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.REQUIRE_PEERS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-x1"):
        tools.require("no-such-tool-x1")


def test_present_tool_found() -> None:
    path = tools.find("sh")
    assert path is not None and path.is_file()
    assert tools.require("sh") == path


def test_free_ports_are_bindable_and_distinct() -> None:
    import socket

    ports = tools.free_udp_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
    port = tools.free_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
