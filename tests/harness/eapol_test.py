"""Runs wpa_supplicant's ``eapol_test`` (Debian package ``eapoltest``) against a RADIUS server.

``eapol_test`` plays the 802.1X supplicant *and* the authenticator: it runs one complete EAP
authentication over RADIUS and prints ``SUCCESS`` or ``FAILURE`` as its last line. When the
server sends MS-MPPE-Recv/Send-Key it compares them with the MSK it derived itself and prints
``MPPE keys OK: N  mismatch: M``.

::

    result = run_eapol_test(
        'eap=PEAP\\nidentity="bob"\\npassword="hello"\\nphase2="auth=MSCHAPV2"\\n'
        f'ca_cert="{ca.cert_path}"',
        port=radius.port, secret=radius.secret, workdir=tmp_path,
    )
    assert result.success and result.mppe_ok, result.output
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.harness.netns import Netns

__all__ = ["EapolResult", "network_conf", "run_eapol_test"]

_MPPE_RE = re.compile(r"^MPPE keys OK: (\d+)\s+mismatch: (\d+)\s*$", re.MULTILINE)
_WRAPPED_RE = re.compile(r"^\s*network\s*=\s*\{", re.MULTILINE)
_counter = itertools.count()


@dataclass(frozen=True)
class EapolResult:
    success: bool
    """The last non-empty output line is ``SUCCESS``."""
    mppe_ok: bool | None
    """``None`` if eapol_test printed no MPPE line; else every key matched and none mismatched."""
    output: str
    """stdout and stderr together (eapol_test writes its debug log to stdout)."""
    returncode: int
    conf_path: Path

    @property
    def mppe_counts(self) -> tuple[int, int] | None:
        """(ok, mismatch) from the last MPPE line, if any."""
        matches = _MPPE_RE.findall(self.output)
        if not matches:
            return None
        ok, bad = matches[-1]
        return int(ok), int(bad)


def network_conf(network_block: str) -> str:
    """``network={...}`` around ``network_block`` unless it already is a network block.

    Adds ``key_mgmt=WPA-EAP`` and an ``ssid`` when the block does not set them.
    """
    if _WRAPPED_RE.search(network_block):
        return network_block if network_block.endswith("\n") else network_block + "\n"
    lines = [line.strip() for line in network_block.strip().splitlines() if line.strip()]
    keys = {line.split("=", 1)[0].strip() for line in lines}
    if "ssid" not in keys:
        lines.insert(0, 'ssid="nea-gateway-test"')
    if "key_mgmt" not in keys:
        lines.insert(1, "key_mgmt=WPA-EAP")
    body = "\n".join(f"    {line}" for line in lines)
    return f"network={{\n{body}\n}}\n"


def run_eapol_test(
    network_block: str,
    *,
    server: str = "127.0.0.1",
    port: int,
    secret: str,
    workdir: Path,
    timeout: float = 30,
    extra_args: Sequence[str] = (),
    netns: Netns | None = None,
    eapol_test: str = "eapol_test",
) -> EapolResult:
    """Write the peer configuration to ``workdir`` and run one authentication.

    ``timeout`` is passed to eapol_test as ``-t`` (whole seconds, at least 1); the process
    itself gets ten seconds more before it is killed. With ``netns`` it runs inside that
    namespace. A missing binary raises ``FileNotFoundError`` (tests skip earlier through
    :func:`tests.harness.tools.require`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"eapol_test-{next(_counter)}.conf"
    conf.write_text(network_conf(network_block))
    cmd = [
        eapol_test,
        f"-c{conf}",
        f"-a{server}",
        f"-p{port}",
        f"-s{secret}",
        f"-t{max(1, int(timeout))}",
        *extra_args,
    ]
    if netns is not None:
        cmd = netns.cmd(*cmd)
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout + 10,
            check=False,
            cwd=workdir,
        )
        output, returncode = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout
        partial = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        output, returncode = partial + "\n[harness: eapol_test killed after timeout]", -9
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    success = bool(lines) and lines[-1] == "SUCCESS"
    matches = _MPPE_RE.findall(output)
    mppe_ok: bool | None = None
    if matches:
        ok, bad = matches[-1]
        mppe_ok = int(ok) > 0 and int(bad) == 0
    (workdir / f"{conf.stem}.log").write_text(output)
    return EapolResult(
        success=success,
        mppe_ok=mppe_ok,
        output=output,
        returncode=returncode,
        conf_path=conf,
    )
