"""Hostile datagrams at our responder while charon's IKE_SA is up (RFC 7296, 2.21, 2.1).

From a second socket in charon's namespace we send garbage (to 500, and to 4500 behind a
non-ESP marker), truncated copies of charon's real IKE_AUTH request, the same request with a
wrong SPI, a forged INFORMATIONAL request (made with the SA's real keys from the responder's
``debug_key_log``) whose ICV is broken, and replays of charon's requests.  Garbage, truncated
messages, unknown SPIs and bad ICVs get no answer at all; a replay of the most recent request
gets the cached response byte for byte (sent back to where the replay came from), an older
one nothing.  Every case shows up in the engine's counters, the responder never dies and the
IKE_SA stays usable: charon then negotiates a new CHILD_SA on it and deletes it cleanly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ike.constants import ExchangeType
from ike.crypto import INTEG_ALGS, encr_alg
from ike.message import Message, SkCipher, encode_message
from tests.harness.tools import require
from tests.harness.tshark import Capture, read_fields
from tests.interop.test_charon_ikev2_psk import CLIENT_CONF, PSK, _gw_connection, _setup
from tests.interop.test_ikev2_tshark_fragments import ResponderWith, interface_with

pytestmark = [pytest.mark.netns, pytest.mark.slow]

# Sends each datagram from a fresh socket and reports what came back within a short wait.
SENDER = r"""
import json, socket, sys
out = []
for port, hexdata in json.load(sys.stdin):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.0.2.2", 0))
    s.settimeout(0.4)
    s.sendto(bytes.fromhex(hexdata), ("192.0.2.1", port))
    got = []
    try:
        while True:
            got.append(s.recv(65536).hex())
    except socket.timeout:
        pass
    s.close()
    out.append(got)
json.dump(out, sys.stdout)
"""


def _send(cl: Any, datagrams: list[tuple[int, bytes]]) -> list[list[bytes]]:
    proc = cl.run(
        sys.executable,
        "-c",
        SENDER,
        input=json.dumps([(port, data.hex()) for port, data in datagrams]),
        timeout=60,
    )
    return [[bytes.fromhex(h) for h in got] for got in json.loads(proc.stdout)]


def _requests(pcap: Path) -> list[tuple[int, int, bool, bytes]]:
    """(exchange type, message ID, is_response, IKE message without marker) of each frame."""
    rows = read_fields(
        pcap,
        ["udp.dstport", "udp.srcport", "udp.payload"],
        display_filter="isakmp",
    )
    out = []
    for dst, src, payload in rows:
        data = bytes.fromhex(payload.replace(":", ""))
        if "4500" in (dst, src):
            assert data[:4] == bytes(4)
            data = data[4:]
        out.append((data[18], int.from_bytes(data[20:24], "big"), bool(data[19] & 0x20), data))
    return out


def _forged_info(key_log: Path, mid: int) -> bytes:
    """A correctly protected INFORMATIONAL request as charon would send it (initiator)."""
    k = json.loads(key_log.read_text().splitlines()[0])
    encr = encr_alg(k["encr"], k["encr_bits"])
    assert encr is not None
    cipher = SkCipher(
        encr,
        INTEG_ALGS[k["integ"]],
        bytes.fromhex(k["sk_ei"]),
        bytes.fromhex(k["sk_ai"]),
        bytes.fromhex(k["sk_er"]),
        bytes.fromhex(k["sk_ar"]),
    )
    msg = Message(
        bytes.fromhex(k["spi_i"]),
        bytes.fromhex(k["spi_r"]),
        ExchangeType.INFORMATIONAL,
        mid,
        False,
        True,
        (),
    )
    (data,) = encode_message(msg, cipher)
    return data


def test_hostile_datagrams_leave_the_sa_up(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    require("tshark")
    gw, cl = _setup(netns)
    key_log = tmp_path / "ours" / "keys.jsonl"
    pcap = tmp_path / "bad.pcapng"
    marker = bytes(4)
    responder = ResponderWith(gw, tmp_path / "ours", [_gw_connection()], debug_key_log=str(key_log))
    try:
        charon = charon_factory(cl, "cl")
        conf = CLIENT_CONF % {
            "proposals": "aes128-sha256-x25519",
            "esp": "aes128-sha256",
            "auth": "psk",
            "rauth": "psk",
            "cl_id": "cl.test",
            "local_extra": "",
            "psk": PSK,
        }
        conf = conf.replace(
            "    children {\n",
            "    children {\n      two {\n        remote_ts = 10.1.5.0/24\n"
            "        esp_proposals = aes128-sha256\n      }\n",
        )
        charon.write_swanctl_conf(conf)
        charon.load_all()
        with Capture(gw, interface_with(gw, "192.0.2.1"), pcap, capture_filter="udp", settle=2):
            charon.initiate("home")
        responder.wait_event("ChildSaInstalled")
        before = responder.stats()
        assert before["ike_sas"] == 1 and before["undecodable"] == 0, before

        frames = _requests(pcap)
        reqs = [d for x, m, r, d in frames if x == 35 and not r]
        resps = [d for x, m, r, d in frames if x == 35 and r]
        assert reqs and resps, f"IKE_AUTH missing from the capture: {frames}"
        auth_req, auth_resp = reqs[0], resps[0]

        junk: list[tuple[int, bytes]] = [
            (500, b""),
            (500, b"\x00"),
            (500, os.urandom(27)),
            (500, os.urandom(28)),
            (500, os.urandom(300)),
            (4500, marker + os.urandom(3)),
            (4500, marker + os.urandom(200)),
            (4500, marker + auth_req[:20]),
            (4500, marker + auth_req[:28]),
            (4500, marker + auth_req[: len(auth_req) // 2]),
            (4500, marker + auth_req[:-1]),
        ]
        wrong_spi_r = auth_req[:8] + os.urandom(8) + auth_req[16:]
        wrong_spi_i = os.urandom(8) + auth_req[8:]
        forged = _forged_info(key_log, 2)
        bad_icv = forged[:-1] + bytes([forged[-1] ^ 0x01])
        answers = _send(
            cl,
            [
                *junk,
                (4500, marker + wrong_spi_r),
                (4500, marker + wrong_spi_i),
                (4500, marker + bad_icv),
                (4500, marker + auth_req),  # replay of the latest request
            ],
        )
        *silent, replayed = answers
        assert silent == [[]] * (len(junk) + 3), silent
        assert replayed == [marker + auth_resp], replayed  # the cached response, as sent
        stats = responder.stats()
        assert stats["undecodable"] - before["undecodable"] == len(junk), stats
        assert stats["unknown_spi"] - before["unknown_spi"] == 2, stats
        assert stats["integrity_failed"] - before["integrity_failed"] == 1, stats
        assert stats["retransmits_answered"] - before["retransmits_answered"] == 1, stats
        assert stats["errors_answered"] == before["errors_answered"], stats
        assert responder.proc.poll() is None

        # the SA is intact: a new CHILD_SA on it (CREATE_CHILD_SA, message ID 2 -- the ID
        # the forged request with the bad ICV tried to take)
        charon.initiate("two")
        (sa,) = charon.list_sas()
        assert sa.state == "ESTABLISHED"
        assert [c.state for c in sa.children] == ["INSTALLED", "INSTALLED"], sa.children
        # now the IKE_AUTH request is old: a replay of it gets nothing
        assert _send(cl, [(4500, marker + auth_req)]) == [[]]
        stats = responder.stats()
        assert stats["unexpected_message_id"] - before["unexpected_message_id"] == 1, stats
        charon.terminate(ike="home")
        charon.wait_for(lambda sas: not sas)
        responder.wait_event("IkeSaClosed")
        assert not [e for e in responder.events() if e.get("error")], responder.events()
    except BaseException:
        print(responder.log()[-6000:])
        raise
    finally:
        responder.stop()
