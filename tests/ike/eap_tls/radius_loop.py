"""An in-process RADIUS server for eapol_test interop: ``radius.RadiusServer`` on a loopback
UDP socket served by a thread (test-only I/O; the engines stay sans-I/O)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ike.eap.server import EapServer
from radius.server import RadiusClient, RadiusServer

SECRET = "interop-secret"


class LoopbackRadius:
    def __init__(self, methods: list[tuple[int, Callable[[bytes], Any]]]) -> None:
        self.engine = RadiusServer(
            [RadiusClient.from_prefix("127.0.0.1/32", SECRET, "loopback")],
            lambda context: EapServer(methods),
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                answer = self.engine.receive_datagram(data, addr, time.monotonic())
            except BaseException as exc:  # surface engine crashes to the test
                self.errors.append(exc)
                continue
            if answer is not None:
                self.sock.sendto(answer, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
