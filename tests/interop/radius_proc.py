"""The project's RADIUS server (``python -m gateway.radius``) as a subprocess on loopback,
for the eapol_test interop tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["REPO", "start_radius_server"]

REPO = Path(__file__).resolve().parents[2]


def start_radius_server(
    workdir: Path, config: str, entry: Sequence[str] = ("-m", "gateway.radius")
) -> tuple[subprocess.Popen[str], int, int, Path]:
    """Write ``config`` to ``workdir/radius.toml`` and start the server (``entry`` names what
    Python runs: the module, or ``-c <code>`` for a wrapped one) with kernel-chosen ports.
    Returns the process, the authentication and accounting ports and the log file; fails the
    test with the log's tail when the server does not say ``listening`` within 20 s."""
    conf = workdir / "radius.toml"
    conf.write_text(config)
    log = workdir / "server.log"
    proc = subprocess.Popen(
        [sys.executable, *entry, "--config", str(conf), "--debug"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening") or (not line and proc.poll() is not None):
            break
    if not line.startswith("listening"):
        proc.kill()
        raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    return (
        proc,
        int(fields["auth"].rsplit(":", 1)[1]),
        int(fields["acct"].rsplit(":", 1)[1]),
        log,
    )
