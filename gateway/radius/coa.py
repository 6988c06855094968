"""Dynamic Authorization (RFC 5176) from the gateway: the Twisted adapter for
:class:`radius.DynamicAuthorizationClient` and a small command line.

``DynamicAuthorizationProtocol.send(...)`` returns a Deferred that fires with the ACK / NAK /
time-out event.  The command line sends one request and prints the answer::

    python -m gateway.radius.coa --nas 192.0.2.1 --secret S --disconnect --session-id 0A1B
    python -m gateway.radius.coa --nas 192.0.2.1:3799 --secret S --coa --user-name bob \\
        --vlan 99 --filter-id quarantine

Exit status: 0 ACK, 1 NAK, 2 no answer, 3 usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from gateway.radius.adapter import Clock
from radius import (
    COA_PORT,
    Attribute,
    AttributeType,
    Code,
    DynamicAuthorizationAcked,
    DynamicAuthorizationClient,
    DynamicAuthorizationNaked,
    DynamicAuthorizationTimedOut,
    Event,
    IntegerAttribute,
    TextAttribute,
    VlanAssignment,
    vlan_attributes,
)

__all__ = ["DynamicAuthorizationProtocol", "main", "request_attributes"]


class DynamicAuthorizationProtocol(DatagramProtocol):
    def __init__(self, clock: Clock, engine: DynamicAuthorizationClient | None = None) -> None:
        self.clock = clock
        self.engine = engine or DynamicAuthorizationClient()
        self._waiting: dict[int, Deferred[Event]] = {}
        self._timer: Any = None

    def send(
        self,
        code: Code,
        attributes: Iterable[Attribute],
        destination: tuple[str, int],
        secret: bytes,
    ) -> Deferred[Event]:
        handle = self.engine.send(code, attributes, destination, secret, self.clock.seconds())
        waiting: Deferred[Event] = Deferred()
        self._waiting[handle] = waiting
        self._pump()
        return waiting

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.engine.receive_datagram(datagram, (addr[0], addr[1]), self.clock.seconds())
        self._pump()

    def _fire(self) -> None:
        self._timer = None
        self.engine.handle_timer(self.clock.seconds())
        self._pump()

    def _pump(self) -> None:
        now = self.clock.seconds()
        transport: Any = self.transport
        for datagram, destination in self.engine.datagrams_to_send(now):
            if transport is not None:
                transport.write(datagram, destination)
        while (event := self.engine.next_event()) is not None:
            handle = getattr(event, "handle", None)
            waiting = self._waiting.pop(handle, None) if isinstance(handle, int) else None
            if waiting is not None:
                waiting.callback(event)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.engine.get_timer()
        if deadline is not None:
            self._timer = self.clock.callLater(max(0.0, deadline - now), self._fire)


def request_attributes(args: argparse.Namespace) -> list[Attribute]:
    """RFC 5176 section 3: session identification plus the authorization changes."""
    T = AttributeType
    out: list[Attribute] = []
    if args.user_name:
        out.append(TextAttribute(T.USER_NAME, args.user_name))
    if args.session_id:
        out.append(TextAttribute(T.ACCT_SESSION_ID, args.session_id))
    if args.calling_station_id:
        out.append(TextAttribute(T.CALLING_STATION_ID, args.calling_station_id))
    if args.vlan or args.filter_id:
        out.extend(vlan_attributes(VlanAssignment(args.vlan, args.filter_id)))
    if args.session_timeout is not None:
        out.append(IntegerAttribute(T.SESSION_TIMEOUT, args.session_timeout))
    if out and not args.no_event_timestamp:
        # RFC 5176 section 3.4: Event-Timestamp lets the NAS refuse replayed requests.
        out.append(IntegerAttribute(T.EVENT_TIMESTAMP, int(time.time())))
    return out


def _parse_nas(value: str) -> tuple[str, int]:
    if value.startswith("["):  # [2001:db8::1]:3799
        host, _, port = value[1:].partition("]")
        return host, int(port.lstrip(":") or COA_PORT)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, COA_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.radius.coa",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--coa", action="store_true", help="send a CoA-Request")
    kind.add_argument("--disconnect", action="store_true", help="send a Disconnect-Request")
    parser.add_argument("--nas", required=True, help="NAS address[:port] (default port 3799)")
    parser.add_argument("--secret", required=True, help="shared secret with the NAS")
    parser.add_argument("--user-name")
    parser.add_argument("--session-id", help="Acct-Session-Id")
    parser.add_argument("--calling-station-id")
    parser.add_argument("--vlan", help="RFC 3580 VLAN to move the session to (CoA)")
    parser.add_argument("--filter-id")
    parser.add_argument("--session-timeout", type=int)
    parser.add_argument(
        "--no-event-timestamp", action="store_true", help="omit Event-Timestamp (RFC 5176 3.4)"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="first retransmit (s)")
    parser.add_argument("--tries", type=int, default=3, help="transmissions before giving up")
    args = parser.parse_args(argv)
    attributes = request_attributes(args)
    if not attributes:
        print(
            "give at least one of --user-name, --session-id, --calling-station-id", file=sys.stderr
        )
        return 3
    try:
        destination = _parse_nas(args.nas)
    except ValueError:
        print(f"bad --nas {args.nas!r}", file=sys.stderr)
        return 3

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    engine = DynamicAuthorizationClient(initial_timeout=args.timeout, max_transmissions=args.tries)
    protocol = DynamicAuthorizationProtocol(reactor, engine)
    reactor.listenUDP(0, protocol, interface="::" if ":" in destination[0] else "0.0.0.0")  # noqa: S104
    code = Code.COA_REQUEST if args.coa else Code.DISCONNECT_REQUEST
    result = {"status": 2}

    def done(event: Event) -> None:
        if isinstance(event, DynamicAuthorizationAcked):
            print(event.code.name)
            result["status"] = 0
        elif isinstance(event, DynamicAuthorizationNaked):
            print(f"{event.code.name} Error-Cause={event.error_cause}")
            result["status"] = 1
        elif isinstance(event, DynamicAuthorizationTimedOut):
            print("no answer")
        reactor.stop()

    def failed(failure: Any) -> None:
        print(f"error: {failure.getErrorMessage()}", file=sys.stderr)
        reactor.stop()

    def start() -> None:
        protocol.send(code, attributes, destination, args.secret.encode()).addCallbacks(
            done, failed
        )

    reactor.callWhenRunning(start)
    reactor.run()
    return result["status"]


if __name__ == "__main__":
    raise SystemExit(main())
