"""The control socket: one JSON object per line over a unix socket.

Request ``{"command": "list-sas", "args": {...}}``; answer ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``.  The server side runs in the reactor
(:class:`ControlFactory`); :func:`call` is the blocking client the CLI uses.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any, Protocol

from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver

__all__ = ["ControlError", "ControlFactory", "ControlProtocol", "call", "listen"]

log = logging.getLogger("gateway.daemon")

MAX_LINE = 1 << 20


class ControlError(Exception):
    """The daemon is not reachable or refused the command."""


class CommandTarget(Protocol):
    def command(self, name: str, args: dict[str, Any]) -> Any: ...


class ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, target: CommandTarget) -> None:
        self.target = target

    def lineReceived(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ValueError('expected {"command": NAME, "args": {...}}')
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("args must be an object")
        except ValueError as exc:
            self._answer({"ok": False, "error": f"bad request: {exc}"})
            return
        d = defer.maybeDeferred(self.target.command, request["command"], args)
        d.addCallbacks(
            lambda result: self._answer({"ok": True, "result": result}),
            self._failed,
        )

    def _failed(self, failure: Any) -> None:
        exc = failure.value
        if isinstance(exc, ValueError | LookupError | defer.TimeoutError | RuntimeError):
            message = str(exc) or type(exc).__name__
        else:
            log.error("control command failed: %s", failure.getTraceback())
            message = f"internal error: {type(exc).__name__}: {exc}"
        self._answer({"ok": False, "error": message})

    def _answer(self, obj: dict[str, Any]) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(json.dumps(obj, default=str).encode() + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._answer({"ok": False, "error": "request too long"})
        transport: Any = self.transport
        if transport is not None:
            transport.loseConnection()


class ControlFactory(protocol.Factory):
    def __init__(self, target: CommandTarget) -> None:
        self.target = target

    def buildProtocol(self, addr: Any) -> ControlProtocol:
        return ControlProtocol(self.target)


def listen(reactor: Any, path: Path, target: CommandTarget) -> Any:
    """Listen on ``path`` (mode 0660; a stale socket file is replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            probe.close()
            raise ControlError(f"{path}: another nea-gateway is running (socket in use)")
        finally:
            probe.close()
    return reactor.listenUNIX(str(path), ControlFactory(target), mode=0o660)


def call(
    path: Path, command: str, args: dict[str, Any] | None = None, timeout: float = 30.0
) -> Any:
    """Send one command and return its result; raises :class:`ControlError`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise ControlError(
                f"cannot reach nea-gateway at {path}: {exc.strerror or exc} (is it running?)"
            ) from None
        sock.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise ControlError(f"no answer from nea-gateway within {timeout:g}s") from None
            if not chunk:
                raise ControlError("nea-gateway closed the control connection")
            buf += chunk
            if len(buf) > 64 * MAX_LINE:
                raise ControlError("answer too long")
    finally:
        sock.close()
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error")))
    return answer.get("result")
