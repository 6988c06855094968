"""Network namespaces and veth pairs for tests, torn down whatever happens.

::

    with NetnsFactory() as nets:
        gw, cl = nets.namespace("gw"), nets.namespace("cl")
        if_gw, if_cl = nets.veth(gw, cl, "192.0.2.1/24", "192.0.2.2/24")
        cl.run("ping", "-c1", "-W1", "192.0.2.1")
        proc = gw.popen("sleep", "100")   # killed at teardown

Names are a short prefix plus random hex, so parallel tests (and other people's tests on the
same machine) never collide, and interface names stay within Linux's 15 characters.

Teardown (``close()``, also run by ``__exit__`` and by the ``netns`` fixture) kills the
processes started with :meth:`Netns.popen`, then every process still living in each
namespace (``ip netns pids``: daemons that forked, a charon behind ``unshare``), deletes the
veths and deletes the namespaces. Every step runs even when an earlier one failed; the errors
are collected and raised together at the end so a broken teardown is never silent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from tests.harness.tools import stop_process_group

__all__ = ["Netns", "NetnsCommandError", "NetnsFactory", "NetnsTeardownError"]

_IFNAMSIZ = 15


class NetnsCommandError(subprocess.CalledProcessError):
    """A command inside a namespace failed; ``str()`` includes its output."""

    def __str__(self) -> str:
        text = super().__str__()
        for label, data in (("stdout", self.stdout), ("stderr", self.stderr)):
            if data:
                if isinstance(data, bytes):
                    data = data.decode(errors="replace")
                text += f"\n--- {label} ---\n{data.rstrip()}"
        return text


class NetnsTeardownError(RuntimeError):
    """One or more teardown steps failed (all steps were still attempted)."""


def _ip(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsCommandError(proc.returncode, ["ip", *args], proc.stdout, proc.stderr)
    return proc


def _unique(prefix: str, total: int = _IFNAMSIZ) -> str:
    hexpart = secrets.token_hex(4)
    prefix = prefix[: max(1, total - len(hexpart))]
    return f"{prefix}{hexpart}"


@dataclass
class Netns:
    """One network namespace (created by :class:`NetnsFactory`)."""

    name: str
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)

    def cmd(self, *cmd: str) -> list[str]:
        """``cmd`` prefixed with ``ip netns exec <name>``."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self,
        *cmd: str,
        check: bool = True,
        timeout: float = 30,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the namespace, capture its text output; raise on failure if ``check``."""
        full = self.cmd(*cmd)
        proc = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NetnsCommandError(proc.returncode, full, proc.stdout, proc.stderr)
        return proc

    def popen(self, *cmd: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` in the namespace in its own session; killed at teardown."""
        kwargs.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.cmd(*cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """PIDs of every process whose network namespace is this one."""
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def __str__(self) -> str:
        return self.name


class NetnsFactory:
    """Creates namespaces and veth pairs; :meth:`close` removes all of them."""

    def __init__(self) -> None:
        self._namespaces: list[Netns] = []
        self._veths: list[tuple[Netns, str]] = []
        self._closed = False

    def __enter__(self) -> NetnsFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def namespaces(self) -> Sequence[Netns]:
        return tuple(self._namespaces)

    def namespace(self, prefix: str = "ns") -> Netns:
        """A fresh namespace named ``<prefix><8 hex>`` with ``lo`` up."""
        if self._closed:
            raise RuntimeError("factory already closed")
        name = _unique(prefix, total=24)
        _ip("netns", "add", name)
        ns = Netns(name)
        self._namespaces.append(ns)
        _ip("-n", name, "link", "set", "lo", "up")
        return ns

    def veth(self, a: Netns, b: Netns, addr_a: str, addr_b: str) -> tuple[str, str]:
        """A veth pair between ``a`` and ``b`` with the given CIDR addresses, both ends up.

        Returns the interface names ``(in_a, in_b)``. Either address may be ``""`` for none.
        """
        stem = _unique("v", total=_IFNAMSIZ - 1)
        if_a, if_b = f"{stem}a", f"{stem}b"
        _ip(
            "link", "add", if_a, "netns", a.name, "type", "veth",
            "peer", "name", if_b, "netns", b.name,
        )  # fmt: skip
        self._veths.append((a, if_a))
        for ns, ifname, addr in ((a, if_a, addr_a), (b, if_b, addr_b)):
            if addr:
                _ip("-n", ns.name, "addr", "add", addr, "dev", ifname)
            _ip("-n", ns.name, "link", "set", ifname, "up")
        return if_a, if_b

    def close(self) -> None:
        """Kill processes, delete veths and namespaces; raise if anything could not be."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for ns in self._namespaces:
            for proc in ns._procs:
                try:
                    stop_process_group(proc, grace=2.0)
                except Exception as exc:
                    errors.append(f"{ns.name}: killing pid {proc.pid}: {exc!r}")
        for ns in self._namespaces:
            try:
                _kill_all_in(ns)
            except Exception as exc:
                errors.append(f"{ns.name}: killing remaining processes: {exc!r}")
        for ns, ifname in self._veths:
            done = _ip("-n", ns.name, "link", "del", ifname, check=False)
            if done.returncode != 0 and "Cannot find device" not in done.stderr:
                errors.append(f"{ns.name}: deleting {ifname}: {done.stderr.strip()}")
        for ns in self._namespaces:
            done = _ip("netns", "del", ns.name, check=False)
            if done.returncode != 0:
                errors.append(f"deleting namespace {ns.name}: {done.stderr.strip()}")
        if errors:
            raise NetnsTeardownError("; ".join(errors))


def _kill_all_in(ns: Netns, timeout: float = 5.0) -> None:
    me = os.getpid()
    pids = [p for p in ns.pids() if p != me]
    if not pids:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (1.0 if sig == signal.SIGTERM else timeout)
        while time.monotonic() < deadline:
            pids = [p for p in ns.pids() if p != me]
            if not pids:
                return
            time.sleep(0.05)
    raise NetnsTeardownError(f"processes {pids} still alive in {ns.name}")
