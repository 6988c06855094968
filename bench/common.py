"""What a benchmark module hands the runner (``python -m bench``).

Every ``bench/bench_*.py`` module defines ``collect(quick: bool) -> list[Result]``: it runs
its measurements (``quick``: smaller sizes, so that the whole run takes a few minutes) and
returns one :class:`Figure` per number it measured -- with the same number for the reference
implementation (strongSwan charon, FreeRADIUS) when it measured that too, in the same run on
the same machine -- and one :class:`Skipped` per part it could not run, with the reason.
A module that cannot run at all raises :class:`SkipBenchmark`.

Long measurements report what they are doing with :func:`progress`. A module's own
``__main__`` block keeps printing its own table; the runner prints one table of every figure.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CHARON_PATHS",
    "Better",
    "Figure",
    "Result",
    "SkipBenchmark",
    "Skipped",
    "charon_version",
    "format_value",
    "freeradius_version",
    "progress",
]

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Figure:
    """One measured number of ours, and the reference's same number when it was measured."""

    benchmark: str
    """The module's short name (``esp`` for bench_esp)."""
    name: str
    """What was measured, e.g. ``CPU per IKE_SA, PSK``."""
    unit: str
    """``ms``, ``Mbit/s``, ``SA/s``, ``KiB``..."""
    ours: float
    reference: float | None = None
    reference_name: str | None = None
    """e.g. ``charon 5.9.8 kernel-libipsec``, ``FreeRADIUS 3.2.1``."""
    better: Better = "lower"
    note: str = ""
    """Why the reference is missing, how many runs, ...: shown beside the figure."""

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', not {self.better!r}")
        if (self.reference is None) != (self.reference_name is None):
            raise ValueError("a reference value needs its reference_name and vice versa")

    @property
    def ratio(self) -> float | None:
        """ours / reference, or None without a reference (or a zero one)."""
        if self.reference is None or self.reference == 0 or not math.isfinite(self.reference):
            return None
        return self.ours / self.reference

    @property
    def ours_ahead(self) -> bool | None:
        """Whether ours is better than the reference (None: no comparison, or equal)."""
        ratio = self.ratio
        if ratio is None or ratio == 1:
            return None
        return ratio < 1 if self.better == "lower" else ratio > 1

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        return out


@dataclass(frozen=True)
class Skipped:
    """A part of a benchmark that did not run (or failed), and why."""

    benchmark: str
    name: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Result = Figure | Skipped


class SkipBenchmark(Exception):
    """Raised by ``collect`` when the whole module cannot run here (the message says why:
    "needs root for network namespaces", "eapol_test not installed (Debian eapoltest)")."""


_started = time.monotonic()


def progress(message: str) -> None:
    """One line of progress on stderr, with the seconds since the run started."""
    print(f"  [{time.monotonic() - _started:7.1f} s] {message}", file=sys.stderr, flush=True)


def format_value(value: float | None) -> str:
    """Three significant digits or so, thousands separated; ``—`` for no value."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100 or (value == int(value) and magnitude >= 10):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _first_line(cmd: Sequence[str]) -> str | None:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            return line.strip()
    return None


CHARON_PATHS = ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon")


def charon_version() -> str | None:
    """``strongSwan 5.9.8`` (from ``charon --version``), None without charon."""
    for path in CHARON_PATHS:
        if Path(path).exists():
            line = _first_line([path, "--version"])
            if line and (m := re.search(r"strongSwan \S+", line)):
                return m.group(0)
            return "strongSwan"
    return None


def freeradius_version() -> str | None:
    """``FreeRADIUS 3.2.1`` (from ``freeradius -v``), None without FreeRADIUS."""
    line = _first_line(["freeradius", "-v"])
    if line is None:
        return None
    if m := re.search(r"FreeRADIUS Version (\S+?)(?:,|$)", line):
        return f"FreeRADIUS {m.group(1)}"
    return "FreeRADIUS"
