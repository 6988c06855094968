"""The namespace factory cleans up after itself, also when the test body raises."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.harness.netns import NetnsFactory
from tests.harness.tools import require

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
def _tools() -> None:
    require("ip")
    require("ping")


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie nobody reaped yet counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Boom(Exception):
    pass


def test_veth_and_ping() -> None:
    with NetnsFactory() as nets:
        a, b = nets.namespace("ta"), nets.namespace("tb")
        if_a, if_b = nets.veth(a, b, "192.0.2.1/24", "192.0.2.2/24")
        assert len(if_a) <= 15 and len(if_b) <= 15
        assert if_a in a.run("ip", "-o", "link").stdout
        assert if_b in b.run("ip", "-o", "link").stdout
        a.run("ping", "-c1", "-W2", "192.0.2.2")
        # Nothing of it is visible in the root namespace.
        assert if_a not in _links() and if_b not in _links()
        names = {a.name, b.name}
        assert names <= _namespaces()
    assert not names & _namespaces()


def test_teardown_when_body_raises() -> None:
    with pytest.raises(Boom), NetnsFactory() as nets:
        a, b = nets.namespace("ta"), nets.namespace("tb")
        nets.veth(a, b, "198.51.100.1/24", "198.51.100.2/24")
        tracked = a.popen("sleep", "300")
        # A daemon that double-forks away from us: only `ip netns pids` can find it.
        b.run("sh", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null &")
        orphans = b.pids()
        assert orphans, "the detached sleep should be running in the namespace"
        names = {a.name, b.name}
        raise Boom
    assert tracked.poll() is not None
    assert not any(_alive(pid) for pid in orphans)
    # Other tests may create namespaces concurrently: only ours must be gone.
    assert not names & _namespaces()


def test_failed_command_reports_output() -> None:
    with NetnsFactory() as nets:
        a = nets.namespace("ta")
        with pytest.raises(subprocess.CalledProcessError) as info:
            a.run("sh", "-c", "echo to-stderr >&2; exit 3")
        assert info.value.returncode == 3
        assert "to-stderr" in str(info.value)
        assert a.run("sh", "-c", "exit 4", check=False).returncode == 4
