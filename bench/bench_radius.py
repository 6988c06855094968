"""Server CPU per RADIUS/EAP authentication, ours against FreeRADIUS 3.2 (issue 9).

For EAP-TLS, PEAP-MS-CHAPv2 and TTLS-PAP, the same ``eapol_test -r N`` run (N+1
authentications by one eapol_test process, TLS 1.2, the same ECDSA P-256 CA and server
certificate, full handshakes) goes to

* our ``python -m gateway.radius`` (INFO logging, one method configured), and
* Debian's FreeRADIUS 3.2 configured alike (``tests.harness.freeradius.FreeRadius``: the
  stock configuration with our users, client, certificates and ``default_eap_type`` set to the
  method; its TLS session cache is off by default, like ours), run as ``freeradius -f``
  (foreground, normal logging, its thread pool) rather than the harness's ``-X`` debug mode,
  whose per-packet debug output would inflate its CPU.

Each server's CPU (the scheduler's run time of all its threads,
``bench.bench_eap.process_cpu``: ``/proc/PID/task/*/schedstat``) is read before and after
the run and divided by the number of authentications eapol_test completed. The table shows
both and the ratio ours / FreeRADIUS (lower is better for us).

Run: ``python bench/bench_radius.py [auths]`` (default 60 per method and server).
Not part of the tests.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.bench_eap import (  # noqa: E402
    METHODS,
    PASSWORD,
    SECRET,
    USER,
    Method,
    Pki,
    count_eapol_successes,
    eapol_block,
    handshake_problem,
    make_pki,
    our_server,
    process_cpu,
    run_eapol,
)
from bench.common import Figure, Result, SkipBenchmark, freeradius_version, progress  # noqa: E402
from tests.harness.freeradius import FreeRadius, FreeRadiusError  # noqa: E402

__all__ = ["BenchFreeRadius", "measure_freeradius", "measure_ours"]


class BenchFreeRadius(FreeRadius):
    """The harness's FreeRADIUS, started with ``-f`` (no debug output) instead of ``-X``."""

    def _spawn(self) -> None:
        self._write_listeners()
        self._log_file = self.log_path.open("wb")
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log_file,
            "stderr": subprocess.STDOUT,
            "start_new_session": True,
        }
        self._proc = subprocess.Popen(
            ["freeradius", "-f", "-l", "stdout", "-d", str(self.raddb)], **kwargs
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if "Ready to process requests" in self.log():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        rc = self._proc.poll()
        self.stop()
        raise FreeRadiusError(f"freeradius exited with {rc} or was not ready:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid


def _measure(
    pid: int, block: str, port: int, secret: str, workdir: Path, n: int, label: str
) -> tuple[float, int]:
    run_eapol(block, port, secret, workdir / "warm", 0)  # warm up
    before = process_cpu(pid)
    output = run_eapol(block, port, secret, workdir / "run", n - 1)
    time.sleep(0.2)
    cpu = process_cpu(pid) - before
    ok = count_eapol_successes(output)
    if ok != n:
        raise SystemExit(f"{label}: {ok} of {n} authentications succeeded:\n{output[-3000:]}")
    if (problem := handshake_problem(output)) is not None:
        raise SystemExit(f"{label}: {problem}")
    return cpu / n, n


def measure_ours(method: Method, pki: Pki, workdir: Path, n: int) -> tuple[float, int]:
    with our_server(workdir, method, pki) as server:
        return _measure(
            server.pid,
            eapol_block(method, pki),
            server.port,
            SECRET,
            workdir,
            n,
            f"ours {method.label}",
        )


def measure_freeradius(method: Method, pki: Pki, workdir: Path, n: int) -> tuple[float, int]:
    radius = BenchFreeRadius(
        workdir,
        users={USER: PASSWORD, "alice": "unused"},
        secret=SECRET,
        server_cert=pki.server,
        ca=pki.ca,
        default_eap_type=method.config_name,
        tls_max_version="1.2",
    )
    radius.start()
    try:
        return _measure(
            radius.pid,
            eapol_block(method, pki),
            radius.port,
            SECRET,
            workdir,
            n,
            f"FreeRADIUS {method.label}",
        )
    finally:
        radius.stop()


def missing_tools() -> str | None:
    for tool, package in (("eapol_test", "eapoltest"), ("freeradius", "freeradius")):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            return f"{tool} not installed (Debian package {package})"
    return None


def run(n: int, say: Callable[[str], None] | None = None) -> list[tuple[Method, float, float, int]]:
    """(method, ours, FreeRADIUS, authentications): CPU seconds per authentication."""
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-radius-") as tmp:
        pki = make_pki(Path(tmp) / "certs")
        for method in METHODS:
            if say:
                say(f"{method.label}: {n} authentications, ours")
            ours, count = measure_ours(method, pki, Path(tmp) / f"ours-{method.config_name}", n)
            if say:
                say(f"{method.label}: {n} authentications, FreeRADIUS")
            theirs, _ = measure_freeradius(method, pki, Path(tmp) / f"fr-{method.config_name}", n)
            out.append((method, ours, theirs, count))
    return out


def collect(quick: bool) -> list[Result]:
    """Server CPU ms per authentication, ours beside FreeRADIUS's, per method."""
    if (missing := missing_tools()) is not None:
        raise SkipBenchmark(missing)
    reference = freeradius_version() or "FreeRADIUS"
    return [
        Figure(
            "radius",
            f"{method.label}, server CPU per authentication",
            "ms",
            ours * 1e3,
            theirs * 1e3,
            reference,
            note=f"{count} auths each, eapol_test, TLS 1.2",
        )
        for method, ours, theirs, count in run(15 if quick else 60, progress)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("auths", nargs="?", type=int, default=60)
    if argv is None:
        # Under ``python -m bench eap radius`` the arguments are the runner's words.
        original = sys.orig_argv
        runner = any(pair == ("-m", "bench") for pair in itertools.pairwise(original))
        argv = [] if runner else sys.argv[1:]
    args = parser.parse_args(argv)
    if (missing := missing_tools()) is not None:
        print(missing, file=sys.stderr)
        return 2
    table = Table(
        title="server CPU per RADIUS/EAP authentication: ours vs FreeRADIUS 3.2 "
        "(same eapol_test runs, TLS 1.2)"
    )
    for col in ("method", "ours", "FreeRADIUS", "ours / FreeRADIUS", "auths each"):
        table.add_column(col, justify="left" if col == "method" else "right")
    version = subprocess.run(["freeradius", "-v"], capture_output=True, text=True).stdout
    for method, ours, theirs, n in run(args.auths):
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        table.add_row(method.label, f"{ours * 1e3:.1f} ms", f"{theirs * 1e3:.1f} ms", ratio, str(n))
    Console(width=140).print(table)
    first = version.splitlines()[0] if version else "FreeRADIUS (version unknown)"
    print(
        f"({first.strip()}; CPU = scheduler run time of each server process over the run, "
        "divided by its count)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
