"""``nea-gateway init DIR`` is a subcommand of the daemon CLI; ``check`` accepts its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.daemon.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_init_then_check_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "gw"
    assert main(["init", str(d), "--name", "vpn.example.org", "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert f"{d} ready" in out
    conf = d / "gateway.toml"
    assert conf.is_file() and (d / "private" / "gw.key").is_file()
    assert main(["check", "-c", str(conf)]) == 0
    assert f"{conf}: OK" in capsys.readouterr().out
    # A second init without --force refuses (usage error), keeping the files.
    before = conf.read_bytes()
    assert main(["init", str(d), "--name", "vpn.example.org"]) == 2
    assert conf.read_bytes() == before


@pytest.mark.slow
def test_init_then_check_as_commands(tmp_path: Path) -> None:
    d = tmp_path / "gw"
    env = dict(os.environ, COLUMNS="200")
    for args in (
        ["init", str(d), "--name", "192.0.2.10", "--no-posture", "--database", "none"],
        ["check", "-c", str(d / "gateway.toml")],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert f"{d / 'gateway.toml'}: OK (" in proc.stdout
