"""tshark (Debian package ``tshark``) as an independent decoder of what went over the wire.

::

    with Capture(ns, "vethxa", tmp_path / "ike.pcapng") as cap:
        ...                                      # traffic
    rows = read_fields(cap.path, ["isakmp.exchtype"], display_filter="isakmp")
    assert problems(cap.path) == []              # no [Malformed Packet], no expert errors

:class:`Capture` waits until tshark reports it is capturing before the body runs, and stops
it (SIGINT, so the file is complete) afterwards. ``decode_as`` entries (``"udp.port==4501,
isakmp"``) make tshark dissect traffic on non-standard ports; ``prefs`` set dissector
preferences (``{"esp.enable_encryption_decode": "TRUE"}``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.netns import Netns

__all__ = ["Capture", "TsharkError", "problems", "read_fields", "tshark_args"]


class TsharkError(RuntimeError):
    """tshark failed to start, capture, or read a file."""


def tshark_args(decode_as: Sequence[str] = (), prefs: Mapping[str, str] | None = None) -> list[str]:
    """``-d`` and ``-o`` options for ``decode_as`` and ``prefs``."""
    args: list[str] = []
    for rule in decode_as:
        args += ["-d", rule]
    for key, value in (prefs or {}).items():
        args += ["-o", f"{key}:{value}"]
    return args


class Capture:
    """``tshark -i IFACE -w PATH`` in a namespace for the duration of a ``with`` block."""

    def __init__(
        self,
        netns: Netns,
        interface: str,
        path: Path,
        *,
        capture_filter: str | None = None,
        start_timeout: float = 15,
        settle: float = 0.6,
    ) -> None:
        self.netns = netns
        self.settle = settle
        self.interface = interface
        self.path = Path(path)
        self.capture_filter = capture_filter
        self.start_timeout = start_timeout
        self.log_path = self.path.with_suffix(self.path.suffix + ".log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["tshark", "-n", "-q", "-i", self.interface, "-w", str(self.path)]
        if self.capture_filter:
            cmd += ["-f", self.capture_filter]
        self._log = self.log_path.open("wb")
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log,
            "stderr": subprocess.STDOUT,
        }
        self._proc = self.netns.popen(*cmd, **kwargs)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if "Capturing on" in self._read_log():
                # tshark prints this as soon as dumpcap reports in; the packet socket can take
                # a moment more (a CI run lost the first IKE_SA_INIT sent right after it).
                time.sleep(self.settle)
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise TsharkError(
            f"tshark did not start capturing on {self.interface}:\n{self._read_log()}"
        )

    def stop(self, settle: float | None = None) -> None:
        """Stop after ``settle`` seconds (default :attr:`settle`).

        dumpcap reads the kernel's capture buffer with a timeout of about 250 ms and does not
        drain it when told to stop, so packets of the last moment would be missing without
        the pause.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            time.sleep(self.settle if settle is None else settle)
            # Only tshark itself (``ip netns exec`` execs it): it stops its dumpcap child
            # through their pipe and waits until the file is complete. SIGINT to the whole
            # group lets dumpcap die before it has written the packets.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _run(args: list[str], timeout: float) -> str:
    proc = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise TsharkError(f"tshark {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def read_fields(
    path: Path,
    fields: Sequence[str],
    *,
    display_filter: str | None = None,
    decode_as: Sequence[str] = (),
    prefs: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> list[list[str]]:
    """One row per (filtered) packet, one string per field (``""`` if absent; repeated
    occurrences of a field are joined with ``,``)."""
    args = ["-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"]
    args += tshark_args(decode_as, prefs)
    for field in fields:
        args += ["-e", field]
    if display_filter:
        args += ["-Y", display_filter]
    out = _run(args, timeout)
    return [line.split("\t") for line in out.splitlines() if line]


def problems(
    path: Path,
    *,
    decode_as: Sequence[str] = (),
    prefs: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> list[str]:
    """``"<frame>: <protocols>: <message>"`` for every malformed packet or expert *error*.

    An empty list means tshark found nothing wrong with the encoding.
    """
    rows = read_fields(
        path,
        ["frame.number", "frame.protocols", "_ws.expert.message"],
        display_filter="_ws.malformed || _ws.expert.severity == error",
        decode_as=decode_as,
        prefs=prefs,
        timeout=timeout,
    )
    return [": ".join(row) for row in rows]
