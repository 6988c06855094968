"""tshark as an independent decoder of our IKEv2 messages: a capture of charon connecting to
our responder (IKE_SA_INIT in the clear, then UDP-encapsulated IKE on 4500) must dissect with
no malformed packet and no expert error."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.tools import require
from tests.interop.test_charon_ikev2_psk import (
    CLIENT_CONF,
    PSK,
    Responder,
    _check,
    _gw_connection,
    _setup,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def test_tshark_decodes_our_messages(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    tshark = require("tshark")
    gw, cl = _setup(netns)
    # the interface inside gw: the one holding 192.0.2.1
    out = subprocess.run(
        ["ip", "-n", gw.name, "-o", "-4", "addr", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ifname = next(line.split()[1] for line in out.splitlines() if "192.0.2.1/" in line)
    pcap = tmp_path / "ike.pcap"
    cap = gw.popen(
        str(tshark),
        "-i",
        ifname,
        "-w",
        str(pcap),
        "-f",
        "udp",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while not pcap.exists() or pcap.stat().st_size == 0:
        assert time.monotonic() < deadline and cap.poll() is None, "tshark did not start"
        time.sleep(0.05)
    responder = Responder(gw, tmp_path / "ours", [_gw_connection()])
    try:
        charon = charon_factory(cl, "cl")
        charon.write_swanctl_conf(
            CLIENT_CONF
            % {
                "proposals": "aes128-sha256-x25519",
                "esp": "aes128gcm16",
                "auth": "psk",
                "rauth": "psk",
                "cl_id": "cl.test",
                "local_extra": "",
                "psk": PSK,
            }
        )
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        charon.terminate(ike="home")
        time.sleep(0.5)
    finally:
        responder.stop()
        cap.send_signal(signal.SIGINT)
        cap.wait(10)
    summary = subprocess.run(
        [str(tshark), "-r", str(pcap), "-Y", "isakmp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IKE_SA_INIT MID=00 Responder Response" in summary, summary
    assert "IKE_AUTH MID=01 Responder Response" in summary, summary
    assert "INFORMATIONAL" in summary
    malformed = subprocess.run(
        [str(tshark), "-r", str(pcap), "-Y", "_ws.malformed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert malformed.strip() == "", malformed
    expert = subprocess.run(
        [str(tshark), "-r", str(pcap), "-q", "-z", "expert,error"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Errors (" not in expert, expert
