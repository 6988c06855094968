"""A minimal client for strongSwan's VICI protocol, enough to read charon's state in tests.

Written from the protocol description in strongSwan's ``src/libcharon/plugins/vici/README.md``
(facts only): a stream of packets, each a 32-bit big-endian length and a payload that starts
with a packet type byte; named packets (command request, event register/unregister, event)
carry a 1-byte name length and the name; messages are a sequence of elements
(section start/end, key/value, list start/item/end) with 8-bit name and 16-bit value lengths.

``swanctl`` remains the tool that loads configurations and initiates: these tests check that
Debian's own tools work. The client here exists so assertions see structured data rather than
a text rendering (``swanctl --raw`` prints DNs with spaces unquoted).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Message", "ViciClient", "ViciError", "decode_message", "encode_message"]

Message = dict[str, Any]
"""A decoded VICI message: values are ``str``, ``list[str]`` or nested ``Message``."""

# Packet types.
CMD_REQUEST = 0
CMD_RESPONSE = 1
CMD_UNKNOWN = 2
EVENT_REGISTER = 3
EVENT_UNREGISTER = 4
EVENT_CONFIRM = 5
EVENT_UNKNOWN = 6
EVENT = 7

# Message element types.
SECTION_START = 1
SECTION_END = 2
KEY_VALUE = 3
LIST_START = 4
LIST_ITEM = 5
LIST_END = 6


class ViciError(Exception):
    """Protocol error, unknown command/event, or a command answering ``success=no``."""


def encode_message(message: Message) -> bytes:
    out = bytearray()

    def name(n: str) -> bytes:
        raw = n.encode()
        if len(raw) > 255:
            raise ViciError(f"name too long: {n!r}")
        return bytes([len(raw)]) + raw

    def value(v: str | bytes) -> bytes:
        raw = v.encode() if isinstance(v, str) else v
        if len(raw) > 0xFFFF:
            raise ViciError("value too long")
        return struct.pack("!H", len(raw)) + raw

    def walk(section: Message) -> None:
        for key, val in section.items():
            if isinstance(val, dict):
                out.append(SECTION_START)
                out.extend(name(key))
                walk(val)
                out.append(SECTION_END)
            elif isinstance(val, list | tuple):
                out.append(LIST_START)
                out.extend(name(key))
                for item in val:
                    out.append(LIST_ITEM)
                    out.extend(value(item))
                out.append(LIST_END)
            else:
                out.append(KEY_VALUE)
                out.extend(name(key))
                out.extend(value(val if isinstance(val, str | bytes) else str(val)))

    walk(message)
    return bytes(out)


def decode_message(data: bytes) -> Message:
    """Decode a message; every length must fit exactly, sections and lists must close."""
    root: Message = {}
    stack: list[Message] = [root]
    current_list: list[str] | None = None
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ViciError("truncated VICI message")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    def take_name() -> str:
        return take(take(1)[0]).decode(errors="replace")

    def take_value() -> str:
        (length,) = struct.unpack("!H", take(2))
        return take(length).decode(errors="replace")

    while pos < len(data):
        kind = take(1)[0]
        if current_list is not None and kind not in (LIST_ITEM, LIST_END):
            raise ViciError(f"element {kind} inside a list")
        if kind == SECTION_START:
            section: Message = {}
            stack[-1][take_name()] = section
            stack.append(section)
        elif kind == SECTION_END:
            if len(stack) == 1:
                raise ViciError("section end without start")
            stack.pop()
        elif kind == KEY_VALUE:
            key = take_name()
            stack[-1][key] = take_value()
        elif kind == LIST_START:
            current_list = []
            stack[-1][take_name()] = current_list
        elif kind == LIST_ITEM:
            if current_list is None:
                raise ViciError("list item outside a list")
            current_list.append(take_value())
        elif kind == LIST_END:
            if current_list is None:
                raise ViciError("list end without start")
            current_list = None
        else:
            raise ViciError(f"unknown element type {kind}")
    if len(stack) != 1 or current_list is not None:
        raise ViciError("unterminated section or list")
    return root


class ViciClient:
    """Blocking VICI client over a Unix socket (one request at a time)."""

    def __init__(self, path: Path | str, timeout: float = 30) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ViciClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------

    def _send(self, kind: int, name: str | None, body: bytes = b"") -> None:
        payload = bytes([kind])
        if name is not None:
            payload += bytes([len(name)]) + name.encode()
        payload += body
        self._sock.sendall(struct.pack("!I", len(payload)) + payload)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ViciError("connection closed by charon")
            buf.extend(chunk)
        return bytes(buf)

    def _recv(self) -> tuple[int, str | None, bytes]:
        (length,) = struct.unpack("!I", self._recv_exact(4))
        payload = self._recv_exact(length)
        if not payload:
            raise ViciError("empty packet")
        kind = payload[0]
        if kind == EVENT:
            n = payload[1]
            return kind, payload[2 : 2 + n].decode(), payload[2 + n :]
        return kind, None, payload[1:]

    # -- API -----------------------------------------------------------------------------

    def request(self, command: str, message: Message | None = None) -> Message:
        """Send a command and return its response (raises on ``success=no``)."""
        self._send(CMD_REQUEST, command, encode_message(message or {}))
        kind, _, body = self._recv()
        if kind == CMD_UNKNOWN:
            raise ViciError(f"unknown command {command!r}")
        if kind != CMD_RESPONSE:
            raise ViciError(f"unexpected packet type {kind}")
        response = decode_message(body)
        if response.get("success") == "no":
            raise ViciError(f"{command}: {response.get('errmsg', 'failed')}")
        return response

    def streamed(
        self, command: str, event: str, message: Message | None = None
    ) -> Iterator[Message]:
        """Run a command that streams ``event`` messages before its response (list-sas...)."""
        self._send(EVENT_REGISTER, event)
        kind, _, _ = self._recv()
        if kind != EVENT_CONFIRM:
            raise ViciError(f"cannot register for event {event!r} (packet type {kind})")
        try:
            self._send(CMD_REQUEST, command, encode_message(message or {}))
            while True:
                kind, name, body = self._recv()
                if kind == EVENT and name == event:
                    yield decode_message(body)
                elif kind == CMD_RESPONSE:
                    response = decode_message(body)
                    if response.get("success") == "no":
                        raise ViciError(f"{command}: {response.get('errmsg', 'failed')}")
                    return
                elif kind == CMD_UNKNOWN:
                    raise ViciError(f"unknown command {command!r}")
        finally:
            self._send(EVENT_UNREGISTER, event)
            self._recv()

    def list_sas(self, ike: str | None = None) -> list[Message]:
        """One ``{ike_sa_name: {...}}`` message per IKE_SA."""
        return list(self.streamed("list-sas", "list-sa", {"ike": ike} if ike else None))
