"""Finding the external tools the netns tests drive, and skipping clearly when one is absent.

A missing tool is a skip whose reason names the Debian package to install. A tool that is
present but broken is never a skip: the test runs and fails.

CI installs every peer (``.ci/run``), so there a skip would only hide a broken machine: with
``NEA_GATEWAY_REQUIRE_PEERS=1`` in the environment a missing tool (or missing root for a
``netns`` test) fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "PACKAGES",
    "REQUIRE_PEERS_ENV",
    "find",
    "free_tcp_port",
    "free_udp_ports",
    "require",
    "skip_or_fail",
    "stop_process_group",
]

REQUIRE_PEERS_ENV = "NEA_GATEWAY_REQUIRE_PEERS"

PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "unshare": "util-linux",
    "charon": "strongswan-charon",
    "swanctl": "strongswan-swanctl",
    "pki": "strongswan-pki",
    "eapol_test": "eapoltest",
    "freeradius": "freeradius",
    "tshark": "tshark",
}
"""Tool name -> Debian package that provides it."""

# charon is not on PATH: Debian installs it under the ipsec libexec directory.
_FIXED: dict[str, tuple[str, ...]] = {
    "charon": ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon"),
}


def find(tool: str) -> Path | None:
    """Absolute path of ``tool`` or ``None``."""
    for candidate in _FIXED.get(tool, ()):
        path = Path(candidate)
        if path.is_file():
            return path
    found = shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return Path(found) if found else None


def require(tool: str) -> Path:
    """Path of ``tool``; skips the running test (naming the package) if it is missing."""
    path = find(tool)
    if path is None:
        package = PACKAGES.get(tool, tool)
        skip_or_fail(f"{tool} not installed (Debian package {package})")
    assert path is not None
    return path


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail with it when ``NEA_GATEWAY_REQUIRE_PEERS=1``."""
    if os.environ.get(REQUIRE_PEERS_ENV) == "1":
        pytest.fail(f"{reason} [{REQUIRE_PEERS_ENV}=1 forbids skipping]", pytrace=False)
    pytest.skip(reason)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server started next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_ports(count: int) -> list[int]:
    """``count`` distinct UDP ports on 127.0.0.1 that were free a moment ago (all bound at
    once, so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM to ``proc``'s process group (started with ``start_new_session=True``), SIGKILL
    to the group when it has not exited after ``grace`` seconds; reaps ``proc``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
