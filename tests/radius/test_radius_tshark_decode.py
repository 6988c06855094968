"""tshark as an independent decoder of what the codec and the server engine put on the wire.

The packets of a whole exchange (EAP Access-Request/Challenge/Accept with MPPE keys and VLAN,
an Access-Request with User-Password, accounting, a Disconnect-Request and its ACK) are
written to a pcap (raw IPv4 + UDP, built here) and dissected by tshark with the shared secret:
it must check every Response Authenticator as correct, decrypt the User-Password, and report
no malformed packet or expert error.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from radius import (
    AcctStatusType,
    AttributeType,
    AuthorizationPolicy,
    Code,
    IntegerAttribute,
    Packet,
    RadiusClient,
    RadiusServer,
    StringAttribute,
    TextAttribute,
    VlanAssignment,
    eap_message_attributes,
    encode_request,
    encode_response,
    hide_password,
    verify_response,
)
from tests.harness.tools import require

T = AttributeType
SECRET = b"tshark-secret"
NAS_IP, SERVER_IP = bytes([192, 0, 2, 10]), bytes([192, 0, 2, 1])


def _frame(payload: bytes, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + udp


def _pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("!IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)  # LINKTYPE_RAW
    for index, frame in enumerate(frames):
        out += struct.pack("!IIII", 1_700_000_000 + index, 0, len(frame), len(frame)) + frame
    return out


class _Eap:
    succeeded = failed = False
    failure_reason = None

    @property
    def msk(self) -> bytes | None:
        return bytes(range(64)) if self.succeeded else None

    def start(self) -> bytes:
        return bytes([1, 1, 0, 5, 1])

    def receive(self, packet: bytes) -> bytes | None:
        if packet[4] == 1:
            return bytes([1, 2, 0, 6, 4, 0])
        self.succeeded = True
        return bytes([3, 2, 0, 4])


def _exchange() -> list[bytes]:
    server = RadiusServer(
        [RadiusClient.from_prefix("192.0.2.0/24", SECRET)],
        lambda context: _Eap(),  # type: ignore[arg-type,return-value]
        policy=AuthorizationPolicy(3600, VlanAssignment("10", "staff")),
    )
    frames = []

    def auth(packet: Packet, port: int = 1812) -> Packet:
        raw = encode_request(packet, SECRET)
        frames.append(_frame(raw, NAS_IP, SERVER_IP, 40000, port))
        out = server.receive_datagram(raw, ("192.0.2.10", 40000), 0.0)
        assert out is not None
        frames.append(_frame(out, SERVER_IP, NAS_IP, port, 40000))
        return verify_response(out, raw[4:20], SECRET)

    user = TextAttribute(T.USER_NAME, "bob")
    challenge = auth(
        Packet(
            Code.ACCESS_REQUEST,
            1,
            os.urandom(16),
            (user, *eap_message_attributes(bytes([2, 1, 0, 8, 1]) + b"bob")),
        )
    )
    state = challenge.string(T.STATE)
    assert state is not None
    accept = auth(
        Packet(
            Code.ACCESS_REQUEST,
            2,
            os.urandom(16),
            (
                user,
                *eap_message_attributes(bytes([2, 2, 0, 6, 4, 0])),
                StringAttribute(T.STATE, state),
            ),
        )
    )
    assert accept.code == Code.ACCESS_ACCEPT
    authenticator = os.urandom(16)
    pap = Packet(
        Code.ACCESS_REQUEST,
        3,
        authenticator,
        (user, StringAttribute(T.USER_PASSWORD, hide_password(b"hello", SECRET, authenticator))),
    )
    assert auth(pap).code == Code.ACCESS_REJECT  # only EAP is served
    accounting = Packet(
        Code.ACCOUNTING_REQUEST,
        4,
        attributes=(
            IntegerAttribute(T.ACCT_STATUS_TYPE, AcctStatusType.START),
            TextAttribute(T.ACCT_SESSION_ID, "0001"),
            user,
        ),
    )
    assert auth(accounting, 1813).code == Code.ACCOUNTING_RESPONSE
    disconnect = encode_request(
        Packet(Code.DISCONNECT_REQUEST, 5, attributes=(TextAttribute(T.ACCT_SESSION_ID, "0001"),)),
        SECRET,
    )
    ack = encode_response(Packet(Code.DISCONNECT_ACK, 5), disconnect[4:20], SECRET)
    frames.append(_frame(disconnect, SERVER_IP, NAS_IP, 50000, 3799))
    frames.append(_frame(ack, NAS_IP, SERVER_IP, 3799, 50000))
    return frames


def test_tshark_accepts_every_packet(tmp_path: Path) -> None:
    tshark = require("tshark")
    capture = tmp_path / "radius.pcap"
    capture.write_bytes(_pcap(_exchange()))
    common = [
        str(tshark),
        "-r",
        str(capture),
        "-o",
        "radius.shared_secret:tshark-secret",
        "-o",
        "radius.validate_authenticator:TRUE",
        "-d",
        "udp.port==3799,radius",
    ]
    fields = subprocess.run(
        [
            *common,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "radius.code",
            "-e",
            "radius.authenticator.valid",
            "-e",
            "radius.User_Password",
            "-e",
            "radius.Tunnel_Private_Group_Id",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    rows = [line.split("|") for line in fields]
    assert [r[0] for r in rows] == ["1", "11", "1", "2", "1", "3", "4", "5", "40", "41"]
    # Every response's authenticator checks out for tshark (1 = True).
    for row in rows:
        if row[0] in ("11", "2", "3", "5", "41"):
            assert row[1] in ("1", "True"), row
        assert row[4] == "", row
    assert rows[4][2] == "hello"
    assert rows[3][3] == "10"
    expert = subprocess.run(
        [*common, "-q", "-z", "expert,error"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "Malformed" not in expert and "Error" not in expert.replace("Errors (0)", ""), expert
