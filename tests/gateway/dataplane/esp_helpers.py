"""Shared helpers for the dataplane tests: SA pairs and inner packets."""

from __future__ import annotations

import os
import struct

from gateway.dataplane.esp import EspTransform, Lifetimes, SaSpec
from ike.payloads import TrafficSelector

GCM128 = EspTransform(20, 128)
GCM256 = EspTransform(20, 256)
CHACHA = EspTransform(28, 256)
CBC_SHA256 = EspTransform(12, 128, 12)
CBC_SHA1 = EspTransform(12, 256, 2)
CBC_SHA384 = EspTransform(12, 192, 13)
CBC_SHA512 = EspTransform(12, 256, 14)
ALL_TRANSFORMS = (GCM128, GCM256, CHACHA, CBC_SHA256, CBC_SHA1, CBC_SHA384, CBC_SHA512)


def ts(net: str, proto: int = 0, port: int | None = None) -> TrafficSelector:
    return TrafficSelector.from_network(net, proto, port)


def sa_pair(
    transform: EspTransform = GCM128,
    *,
    spi_a: int = 0xC0000001,
    spi_b: int = 0xC0000002,
    a_ts: tuple[TrafficSelector, ...] = (ts("10.1.0.0/16"),),
    b_ts: tuple[TrafficSelector, ...] = (ts("10.3.0.2/32"),),
    esn: bool = False,
    replay_window: int = 128,
    lifetimes: Lifetimes | None = None,
    ike_sa: bytes = b"\x01" * 8,
    keys: tuple[bytes, bytes, bytes, bytes] | None = None,
) -> tuple[SaSpec, SaSpec]:
    """The two ends (gateway ``a``, client ``b``) of one CHILD_SA."""
    e1, a1, e2, a2 = keys or (
        os.urandom(transform.encr_key_len),
        os.urandom(transform.integ_key_len),
        os.urandom(transform.encr_key_len),
        os.urandom(transform.integ_key_len),
    )
    lt = lifetimes or Lifetimes()
    a = SaSpec(
        ike_sa,
        "net",
        spi_a,
        spi_b,
        transform,
        e1,
        a1,
        e2,
        a2,
        a_ts,
        b_ts,
        ("192.0.2.1", 4500),
        ("192.0.2.2", 4500),
        esn=esn,
        replay_window=replay_window,
        lifetimes=lt,
    )
    b = SaSpec(
        ike_sa,
        "net",
        spi_b,
        spi_a,
        transform,
        e2,
        a2,
        e1,
        a1,
        b_ts,
        a_ts,
        ("192.0.2.2", 4500),
        ("192.0.2.1", 4500),
        esn=esn,
        replay_window=replay_window,
        lifetimes=lt,
    )
    return a, b


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int = 1, payload: bytes = b"\x08\x00\x00\x00ping") -> bytes:
    import ipaddress

    total = 20 + len(payload)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        1,
        0,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + payload


def udp4(src: str, dst: str, sport: int, dport: int, body: bytes = b"x") -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body)


def ipv6(src: str, dst: str, proto: int = 58, payload: bytes = b"\x80\x00\x00\x00ping") -> bytes:
    import ipaddress

    return (
        struct.pack("!IHBB", 0x60000000, len(payload), proto, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


# --------------------------------------------------------------------------------------------
# Two standalone userspace dataplanes in namespaces (interop tests and the benchmark)


def sa_json(spec: SaSpec) -> dict[str, object]:
    """A SaSpec as the standalone runner's JSON."""
    return {
        "ike_sa": spec.ike_sa.hex(),
        "name": spec.name,
        "spi_in": f"{spec.spi_in:08x}",
        "spi_out": f"{spec.spi_out:08x}",
        "encr_id": spec.transform.encr_id,
        "encr_key_bits": spec.transform.encr_key_bits,
        "integ_id": spec.transform.integ_id,
        "encr_key_in": spec.encr_key_in.hex(),
        "integ_key_in": spec.integ_key_in.hex(),
        "encr_key_out": spec.encr_key_out.hex(),
        "integ_key_out": spec.integ_key_out.hex(),
        "local_ts": [_cidr(t) for t in spec.local_ts],
        "remote_ts": [_cidr(t) for t in spec.remote_ts],
        "local": spec.local[0],
        "remote": list(spec.remote),
        "esn": spec.esn,
        "replay_window": spec.replay_window,
    }


def _cidr(t: TrafficSelector) -> str:
    import ipaddress

    (net,) = ipaddress.summarize_address_range(t.start_addr, t.end_addr)  # type: ignore[type-var]
    return str(net)


def control(path: object, request: dict[str, object], timeout: float = 10) -> dict[str, object]:
    """One JSON request to a runner's control socket."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply: dict[str, object] = json.loads(buf)
    if not reply.get("ok"):
        raise RuntimeError(f"control request {request.get('op')} failed: {reply}")
    return reply


def stats(path: object) -> dict[str, object]:
    reply = control(path, {"op": "stats"})
    out = reply["stats"]
    assert isinstance(out, dict)
    return out
