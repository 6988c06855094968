"""The tshark helper finds what tshark finds: fields, and malformed packets (no root needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.harness.tools import require
from tests.harness.tshark import problems, read_fields


def _ipv4_udp(payload: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
        bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1]),
    )  # fmt: skip
    checksum = sum(struct.unpack("!10H", header))
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    checksum = ~((checksum & 0xFFFF) + (checksum >> 16)) & 0xFFFF
    return header[:10] + struct.pack("!H", checksum) + header[12:] + udp


def _pcap(path: Path, packets: list[bytes]) -> Path:
    # libpcap file format, LINKTYPE_RAW (101): each record is a bare IP packet.
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    for i, pkt in enumerate(packets):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(pkt), len(pkt)) + pkt
    path.write_bytes(out)
    return path


def _ike_header(length: int, exchange: int = 34) -> bytes:
    # RFC 7296 3.1: SPIi, SPIr, next payload, version 2.0, exchange type, flags, MID, length.
    return struct.pack("!8s8sBBBBII", b"\x01" * 8, b"\x00" * 8, 0, 0x20, exchange, 0x08, 0, length)


def test_fields_and_no_problems(tmp_path: Path) -> None:
    require("tshark")
    cap = _pcap(tmp_path / "ok.pcap", [_ipv4_udp(_ike_header(28), 500, 500)])
    assert read_fields(cap, ["isakmp.exchangetype", "isakmp.version"]) == [["34", "0x20"]]
    assert problems(cap) == []


def test_malformed_is_reported(tmp_path: Path) -> None:
    require("tshark")
    # Header claims 1000 bytes, 28 are there; and a truncated header on its own.
    cap = _pcap(
        tmp_path / "bad.pcap",
        [_ipv4_udp(_ike_header(1000), 500, 500), _ipv4_udp(_ike_header(28)[:10], 500, 500)],
    )
    found = problems(cap)
    assert found, "tshark should flag the broken IKE headers"
    assert all("isakmp" in line for line in found), found


def test_bad_field_name_is_an_error(tmp_path: Path) -> None:
    require("tshark")
    cap = _pcap(tmp_path / "ok.pcap", [_ipv4_udp(_ike_header(28), 500, 500)])
    with pytest.raises(RuntimeError, match=r"isakmp\.nonexistent"):
        read_fields(cap, ["isakmp.nonexistent"])
