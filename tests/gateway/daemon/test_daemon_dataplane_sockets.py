"""The daemon prepares its IKE sockets for the dataplane: XFRM bypass on both and
UDP_ENCAP_ESPINUDP on the NAT-T socket (kernel ESP-in-UDP); the userspace backend sends ESP
straight from the NAT-T socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.daemon import Gateway, load_config
from gateway.daemon.service import Dataplane
from tests.gateway.daemon.daemon_rig import PSK_CONFIG

UDP_ENCAP = 100  # linux/udp.h
UDP_ENCAP_ESPINUDP = 2


class _Port:
    def __init__(self, proto: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        proto.transport = self

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.socket.sendto(data, addr)

    def stopListening(self) -> None:
        self.socket.close()


class _Reactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[int, _Port] = {}

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> _Port:
        self.ports[port] = _Port(proto)
        return self.ports[port]


class _Named(Dataplane):
    def __init__(self, name: str) -> None:
        self.name = name
        self.sender: Any = None
        self.segments: Any = None

    def set_sender(self, sender: Any) -> None:
        self.sender = sender

    def set_segment_sender(self, sender: Any) -> None:
        self.segments = sender


def _gateway(tmp_path: Path, dataplane: Dataplane) -> tuple[Gateway, _Reactor]:
    path = tmp_path / "gw.toml"
    path.write_text(PSK_CONFIG)
    reactor = _Reactor()
    gw = Gateway(load_config(path), reactor, config_path=path, dataplane=dataplane)
    return gw, reactor


@pytest.mark.skipif(os.geteuid() != 0, reason="IP_XFRM_POLICY on a socket needs CAP_NET_ADMIN")
def test_xfrm_backend_prepares_both_ike_sockets(tmp_path: Path) -> None:
    gw, reactor = _gateway(tmp_path, _Named("xfrm"))
    gw.start()
    try:
        encap = {
            p: port.socket.getsockopt(socket.IPPROTO_UDP, UDP_ENCAP)
            for p, port in reactor.ports.items()
        }
        assert encap == {500: 0, 4500: UDP_ENCAP_ESPINUDP}
    finally:
        gw._close_resources()


def test_userspace_backend_sends_esp_from_the_natt_socket(tmp_path: Path) -> None:
    dp = _Named("userspace")
    gw, reactor = _gateway(tmp_path, dp)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    try:
        gw.start()
        dp.sender(b"\x00\x00\x10\x01esp", sink.getsockname())
        data, src = sink.recvfrom(100)
        assert data == b"\x00\x00\x10\x01esp"
        assert src == reactor.ports[4500].socket.getsockname()
        if dp.segments is not None:  # the kernel has UDP GSO
            dp.segments([b"\x00\x00\x10\x01a", b"\x00\x00\x10\x01b"], sink.getsockname())
            assert [sink.recv(100) for _ in "ab"] == [b"\x00\x00\x10\x01a", b"\x00\x00\x10\x01b"]
        # No UDP_ENCAP without the kernel dataplane.
        assert reactor.ports[4500].socket.getsockopt(socket.IPPROTO_UDP, UDP_ENCAP) == 0
    finally:
        sink.close()
        gw._close_resources()


def test_none_backend_leaves_sockets_alone(tmp_path: Path) -> None:
    gw, reactor = _gateway(tmp_path, _Named("none"))
    gw.start()
    try:
        assert all(
            p.socket.getsockopt(socket.IPPROTO_UDP, UDP_ENCAP) == 0 for p in reactor.ports.values()
        )
    finally:
        gw._close_resources()
