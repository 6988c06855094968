"""Userspace ESP backend: the sans-I/O :class:`~gateway.dataplane.esp.EspEngine` on a TUN device.

Thin adapter: the TUN file descriptor is a reactor reader (packets routed into the TUN are
encrypted and handed to ``send_esp``, normally the IKE socket on port 4500); ESP that the IKE
socket demultiplexed (no non-ESP marker) comes in through :meth:`UserspaceDataplane.esp_received`
and the inner packets are written to the TUN.  Routes for the remote traffic selectors and
the virtual IP addresses are set with pyroute2 on the :class:`~gateway.dataplane.base.NetlinkWorker`
thread.

``python -m gateway.dataplane.userspace --config FILE.json`` runs a standalone dataplane with
manually keyed SAs and its own UDP socket (the two-namespace tests and the benchmark use it);
see :func:`main`.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReadDescriptor
from twisted.protocols.basic import LineReceiver
from twisted.python import failure
from zope.interface import implementer

from gateway.dataplane.base import (
    DataplaneEvent,
    DataplaneUnavailable,
    NetlinkWorker,
)
from gateway.dataplane.esp import (
    EspEngine,
    EspTransform,
    Lifetimes,
    SaHardExpired,
    SaSpec,
)
from gateway.engine_timer import EngineTimer
from ike.constants import NON_ESP_MARKER
from ike.payloads import TrafficSelector
from ike.sa import Address

__all__ = [
    "EspUdpPort",
    "TunDevice",
    "UserspaceDataplane",
    "main",
    "open_tun",
    "receive_segments",
    "segment_sender",
    "size_esp_socket",
    "socket_sender",
]

log = logging.getLogger("gateway.dataplane.userspace")

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_READS_PER_WAKEUP = 256
ESP_RECEIVE_BUFFER = 4 * 1024 * 1024
SO_RCVBUFFORCE = 33
"""Linux ``SO_RCVBUFFORCE`` (Python's socket module has it only from 3.12)."""
SOL_UDP = 17
UDP_SEGMENT = 103
"""linux/udp.h: UDP generic segmentation offload (Linux 4.18)."""
UDP_GRO = 104
"""linux/udp.h: coalesced receive of same-size datagrams (Linux 5.0)."""
_GRO_CMSG_SPACE = socket.CMSG_SPACE(4)
GSO_MAX_SEGMENTS = 64
"""UDP_MAX_SEGMENTS of the kernel (64 up to 6.x; more is refused with EINVAL)."""
GSO_MAX_BYTES = 65000
"""Payload of one segmented send: below 65,507 (IPv4 length less IP and UDP headers)."""
"""Receive buffer asked for on the socket ESP arrives on (see :func:`size_esp_socket`)."""


def open_tun(name: str) -> tuple[int, str]:
    """Open (create) a TUN device without packet information; returns (fd, actual name)."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataplaneUnavailable(f"cannot open /dev/net/tun: {exc.strerror}") from exc
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
        out = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as exc:
        os.close(fd)
        raise DataplaneUnavailable(f"cannot create TUN device {name}: {exc.strerror}") from exc
    return fd, out[:16].rstrip(b"\0").decode()


@implementer(IReadDescriptor)
class TunDevice:
    """The TUN device as a Twisted reader."""

    def __init__(
        self,
        fd: int,
        ifname: str,
        on_packet: Callable[[bytes], None],
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.fd = fd
        self.ifname = ifname
        self.on_packet = on_packet
        self.on_flush = on_flush
        """Called once after the packets of one wakeup (the dataplane sends what it batched)."""
        self.write_errors = 0

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return f"tun {self.ifname}"

    def doRead(self) -> None:
        try:
            self._read()
        finally:
            if self.on_flush is not None:
                self.on_flush()

    def _read(self) -> None:
        fd, on_packet = self.fd, self.on_packet
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                packet = os.read(fd, 65535)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("read from %s: %s", self.ifname, exc)
                return
            on_packet(packet)

    def write(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
        except OSError as exc:
            self.write_errors += 1
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                log.warning("write to %s: %s", self.ifname, exc)

    def connectionLost(self, reason: failure.Failure) -> None:
        return None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def ts_networks(selectors: Iterable[TrafficSelector]) -> list[str]:
    """CIDR prefixes covering traffic selector address ranges (for routes)."""
    out: list[str] = []
    for ts in selectors:
        for net in ipaddress.summarize_address_range(ts.start_addr, ts.end_addr):
            out.append(str(net))
    return out


class _Routes:
    """pyroute2 side (runs on the netlink worker thread): TUN link, addresses, routes."""

    def __init__(self, ifname: str, mtu: int) -> None:
        self.ifname = ifname
        self.mtu = mtu
        self._ipr: Any = None
        self.index = 0

    def _ip(self) -> Any:
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    def link_up(self) -> None:
        ipr = self._ip()
        (self.index,) = ipr.link_lookup(ifname=self.ifname)
        # No IPv6 link-local address on a point-to-point TUN: the kernel would otherwise send
        # router solicitations into the tunnel, which no CHILD_SA covers.
        gen_mode = Path(f"/proc/sys/net/ipv6/conf/{self.ifname}/addr_gen_mode")
        try:
            gen_mode.write_text("1")
        except OSError:
            pass  # IPv6 disabled or sysctl read-only: nothing to suppress
        ipr.link("set", index=self.index, state="up", mtu=self.mtu)

    def add_address(self, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        try:
            self._ip().addr(
                "add", index=self.index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except Exception as exc:  # pyroute2 raises NetlinkError(EEXIST)
            if getattr(exc, "code", None) != errno.EEXIST:
                raise

    def remove_address(self, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        self._ip().addr(
            "del", index=self.index, address=str(iface.ip), prefixlen=iface.network.prefixlen
        )

    def route(self, op: str, dst: str, prefsrc: str | None) -> None:
        kwargs: dict[str, Any] = {"dst": dst, "oif": self.index}
        if prefsrc is not None:
            kwargs["prefsrc"] = prefsrc
        try:
            self._ip().route(op, **kwargs)
        except Exception as exc:
            if op == "del" and getattr(exc, "code", None) in (errno.ESRCH, errno.ENODEV):
                return
            raise

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


class UserspaceDataplane:
    """The userspace backend (see the module docstring and
    :class:`gateway.dataplane.base.Dataplane`).

    ``send_esp(data, remote)`` writes a UDP datagram from the IKE socket's port 4500 (no
    non-ESP marker: ESP goes as it is, RFC 3948 2.2).  ``addresses`` are put on the TUN
    device (a client's virtual IP).  ``manage_routes`` False leaves routing to someone else.
    """

    backend = "userspace"

    def __init__(
        self,
        reactor: Any,
        send_esp: Callable[[bytes, Address], None],
        *,
        ifname: str = "nea-esp0",
        mtu: int = 1400,
        addresses: Iterable[str] = (),
        manage_routes: bool = True,
        netlink: NetlinkWorker | None = None,
        reason: str = "configured: userspace",
        engine: EspEngine | None = None,
    ) -> None:
        self.reactor = reactor
        self.send_esp = send_esp
        self.ifname = ifname
        self.mtu = mtu
        self.addresses = list(addresses)
        self.manage_routes = manage_routes
        self.netlink = netlink or NetlinkWorker(reactor)
        self.reason = reason
        self.engine = engine or EspEngine()
        self.on_event: Callable[[DataplaneEvent], None] = lambda event: None
        self.tun: TunDevice | None = None
        self._routes: _Routes | None = None
        self._route_refs: dict[tuple[str, str | None], int] = {}
        self._sa_routes: dict[int, list[tuple[str, str | None]]] = {}
        self._timer = EngineTimer(reactor, self.now, self.engine.get_timer, self._fire)
        self.send_errors = 0
        self.send_esp_segments: Callable[[list[bytes], Address], None] | None = None
        """Optional: send several ESP packets of one size (the last may be shorter) to one
        peer in one system call (:func:`segment_sender`).  Set, the TUN reader batches the
        packets of one wakeup; unset, each goes out through ``send_esp`` at once."""
        self.segment_fallbacks = 0
        self._batch: list[bytes] = []
        self._batch_remote: Address | None = None
        self._batch_size = 0
        self._batch_bytes = 0
        self._segment_limit = 1 << 16
        """ESP packets this long or longer go one by one (the kernel refused to segment
        them: larger than the path MTU)."""
        # the reactor's clock bound once (the per-packet path); a dataplane made without a
        # reactor (backend choice, tests) only needs it once it runs
        self._seconds: Callable[[], float] = getattr(reactor, "seconds", None) or self.now
        """``now`` without a Python frame of its own, for the per-packet path."""

    # -- lifecycle --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        fd, self.ifname = open_tun(self.ifname)
        self.tun = TunDevice(fd, self.ifname, self._from_tun, self._flush)
        self._routes = _Routes(self.ifname, self.mtu)
        yield self.netlink.call(self._routes.link_up)
        for cidr in self.addresses:
            yield self.netlink.call(self._routes.add_address, cidr)
        self.reactor.addReader(self.tun)
        log.info("userspace ESP on %s (%s)", self.ifname, self.reason)

    def stop(self) -> defer.Deferred[None]:
        self._timer.cancel()
        self._flush()
        if self.tun is not None:
            self.reactor.removeReader(self.tun)
            self.tun.close()  # the kernel removes a non-persistent TUN and its routes
            self.tun = None
        routes = self._routes
        self._routes = None
        if routes is None:
            return defer.succeed(None)
        return self.netlink.call(routes.close)

    def now(self) -> float:
        return float(self.reactor.seconds())

    # -- Dataplane API ----------------------------------------------------------------------

    def allocate_spi(self, remote: str, local: str) -> defer.Deferred[int]:
        return defer.succeed(self.engine.spis.allocate())

    def install_child_sa(self, spec: SaSpec) -> defer.Deferred[None]:
        try:
            self.engine.install(spec, self.now())
        except Exception:
            return defer.fail()
        if not spec.udp_encap:
            log.warning(
                "CHILD_SA %08x: userspace ESP is always UDP-encapsulated (RFC 3948); "
                "the peer must accept ESP-in-UDP on 4500",
                spec.spi_in,
            )
        log.info("installed %r", spec)
        self._timer.arm()
        return self._add_routes(spec.spi_in, spec.local_ts, spec.remote_ts)

    def delete_child_sa(self, spi_in: int) -> defer.Deferred[None]:
        self.engine.remove(spi_in)
        self._timer.arm()
        return self._drop_routes(spi_in)

    @defer.inlineCallbacks
    def update_selectors(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> Any:
        self.engine.update_selectors(spi_in, local_ts, remote_ts)
        yield self._drop_routes(spi_in)
        yield self._add_routes(spi_in, local_ts, remote_ts)

    def child_sas(self, ike_sa: bytes) -> list[int]:
        return self.engine.sas_of(ike_sa)

    def add_address(self, cidr: str) -> defer.Deferred[None]:
        """Put a (virtual) IP address on the TUN device, e.g. the one an initiator got in
        the CP payload; routes installed later use it as their source."""
        if cidr not in self.addresses:
            self.addresses.append(cidr)
        if self._routes is None:
            return defer.succeed(None)
        return self.netlink.call(self._routes.add_address, cidr)

    def remove_address(self, cidr: str) -> defer.Deferred[None]:
        if cidr in self.addresses:
            self.addresses.remove(cidr)
        if self._routes is None:
            return defer.succeed(None)
        return self.netlink.call(self._routes.remove_address, cidr)

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        inner = self.engine.inbound(data, remote, self._seconds())
        if inner is not None and self.tun is not None:
            self.tun.write(inner)
        if self.engine._events:
            # Only an event (a lifetime ran out) can move the engine's next deadline: no
            # get_timer() scan and timer re-arm per packet.
            self._deliver()

    def stats(self) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed(self.stats_now())

    def stats_now(self) -> dict[str, Any]:
        e = self.engine
        return {
            "backend": self.backend,
            "reason": self.reason,
            "ifname": self.ifname,
            "packets_in": e.packets_in,
            "packets_out": e.packets_out,
            "bytes_in": e.bytes_in,
            "bytes_out": e.bytes_out,
            "drops": {str(k): v for k, v in e.drops.items()},
            "tun_write_errors": self.tun.write_errors if self.tun else 0,
            "send_errors": self.send_errors,
            "segment_fallbacks": self.segment_fallbacks,
            "child_sas": [
                {
                    "ike_sa": s.ike_sa,
                    "name": s.name,
                    "spi_in": f"{s.spi_in:08x}",
                    "spi_out": f"{s.spi_out:08x}",
                    "transform": s.transform,
                    "local_ts": list(s.local_ts),
                    "remote_ts": list(s.remote_ts),
                    "remote": list(s.remote),
                    "packets_in": s.packets_in,
                    "bytes_in": s.bytes_in,
                    "packets_out": s.packets_out,
                    "bytes_out": s.bytes_out,
                    "replayed": s.replayed,
                    "auth_failed": s.auth_failed,
                    "soft_expired": s.soft_expired,
                }
                for s in e.sa_stats()
            ],
        }

    # -- packets ----------------------------------------------------------------------------

    def _from_tun(self, packet: bytes) -> None:
        out = self.engine.encapsulate(packet, self._seconds())
        if out is not None:
            if self.send_esp_segments is not None:
                self._batched(out[0], out[1])
            else:
                try:
                    self.send_esp(out[0], out[1])
                except OSError:  # socket buffer full (EAGAIN) or no route: drop, like a NIC
                    self.send_errors += 1
        if self.engine._events:
            self._deliver()

    def _batched(self, data: bytes, remote: Address) -> None:
        """Queue an ESP packet for the segmented send at the end of this wakeup; a batch is
        packets of one length to one peer, in order, ended early by a shorter packet."""
        size = len(data)
        batch = self._batch
        if batch and (
            remote != self._batch_remote
            or size > self._batch_size
            or len(batch) >= GSO_MAX_SEGMENTS
            or self._batch_bytes + size > GSO_MAX_BYTES
        ):
            self._flush()
            batch = self._batch
        if size >= self._segment_limit:
            try:
                self.send_esp(data, remote)
            except OSError:
                self.send_errors += 1
            return
        if not batch:
            self._batch_remote, self._batch_size, self._batch_bytes = remote, size, 0
        batch.append(data)
        self._batch_bytes += size
        if size < self._batch_size:
            self._flush()

    def _flush(self) -> None:
        """Send the batched ESP packets (see :meth:`_batched`)."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        remote = self._batch_remote
        assert remote is not None
        send_segments = self.send_esp_segments
        try:
            if len(batch) == 1 or send_segments is None:
                for data in batch:
                    self.send_esp(data, remote)
            else:
                send_segments(batch, remote)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EMSGSIZE, errno.EIO) or len(batch) == 1:
                self.send_errors += len(batch)  # socket buffer full: dropped, like a NIC
                return
            # The kernel would not segment these (longer than the path MTU, or no UDP GSO
            # on this route): send them one by one, now and from this length on.
            self.segment_fallbacks += 1
            self._segment_limit = min(self._segment_limit, self._batch_size)
            if exc.errno == errno.EIO:
                self.send_esp_segments = None
            for data in batch:
                try:
                    self.send_esp(data, remote)
                except OSError:
                    self.send_errors += 1

    # -- events and timers ------------------------------------------------------------------

    def _deliver(self) -> None:
        while (event := self.engine.next_event()) is not None:
            if isinstance(event, SaHardExpired) and event.spi_in in self._sa_routes:
                self._drop_routes(event.spi_in)
            try:
                self.on_event(event)
            except Exception:
                log.exception("dataplane event consumer failed on %r", event)
        self._timer.arm()

    def _fire(self) -> None:
        self.engine.handle_timer(self.now())
        self._deliver()

    # -- routes -----------------------------------------------------------------------------

    def _prefsrc(self, local_ts: tuple[TrafficSelector, ...], version: int) -> str | None:
        for cidr in self.addresses:
            ip = ipaddress.ip_interface(cidr).ip
            if ip.version == version and any(
                t.start_addr.version == version and t.start_addr <= ip <= t.end_addr  # type: ignore[operator]
                for t in local_ts
            ):
                return str(ip)
        return None

    def _add_routes(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> defer.Deferred[None]:
        if not self.manage_routes or self._routes is None:
            return defer.succeed(None)
        routes = self._routes
        new: list[tuple[str, str | None]] = []
        mine: list[tuple[str, str | None]] = []
        for net in ts_networks(remote_ts):
            key = (net, self._prefsrc(local_ts, ipaddress.ip_network(net).version))
            mine.append(key)
            self._route_refs[key] = self._route_refs.get(key, 0) + 1
            if self._route_refs[key] == 1:
                new.append(key)
        self._sa_routes[spi_in] = mine

        def add() -> None:
            for dst, src in new:
                routes.route("replace", dst, src)

        return self.netlink.call(add)

    def _drop_routes(self, spi_in: int) -> defer.Deferred[None]:
        mine = self._sa_routes.pop(spi_in, [])
        gone: list[tuple[str, str | None]] = []
        for key in mine:
            self._route_refs[key] -= 1
            if self._route_refs[key] == 0:
                del self._route_refs[key]
                gone.append(key)
        routes = self._routes
        if not gone or routes is None:
            return defer.succeed(None)

        def drop() -> None:
            for dst, src in gone:
                if (dst, src) not in self._route_refs:
                    routes.route("del", dst, src)

        return self.netlink.call(drop)


# --------------------------------------------------------------------------------------------
# Standalone runner: manual SAs, own UDP socket, control socket (tests, benchmark)


class EspUdpPort(protocol.DatagramProtocol):
    """UDP 4500 demultiplexer for the standalone runner (the daemon uses
    ``gateway.ike_udp``'s port instead): a zero non-ESP marker means IKE (ignored here),
    one octet 0xff is a NAT keepalive, anything else is ESP."""

    def __init__(self, dataplane: UserspaceDataplane, host: str, port: int) -> None:
        self.dataplane = dataplane
        self.host = host
        self.port = port
        self.ike_ignored = 0
        self._local = (host, port)
        self._sender: Callable[[bytes, Address], None] | None = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if data == b"\xff":
            return
        if data.startswith(NON_ESP_MARKER):
            self.ike_ignored += 1
            return
        # Twisted hands over (host, port) as (str, int) already (IPv6 cut to two items).
        self.dataplane.esp_received(data, addr, self._local)

    def send(self, data: bytes, remote: Address) -> None:
        if self._sender is None:
            if self.transport is None:
                return
            self._sender = socket_sender(self.transport)
        self._sender(data, remote)


def socket_sender(transport: Any) -> Callable[[bytes, Address], None]:
    """A ``send_esp`` writing straight to a Twisted UDP port's socket: ``transport.write``
    re-validates the address on every call, which costs more than the encryption here.
    It is the socket's own ``sendto``, no Python frame around it.  Errors (EAGAIN when the
    socket buffer is full) propagate as OSError; the dataplane counts them."""
    return cast("Callable[[bytes, Address], None]", transport.socket.sendto)


def segment_sender(sock: socket.socket) -> Callable[[list[bytes], Address], None] | None:
    """A ``send_esp_segments`` for a UDP socket: ESP packets of one length (the last one may
    be shorter) to one peer in one ``sendmsg`` with ``UDP_SEGMENT``; the kernel (or the NIC)
    cuts it into the very datagrams separate ``sendto`` calls would have sent, for a fraction
    of the per-datagram cost.  On an interface without segmentation offload (veth, lo) a
    capture may show them as one large datagram before the receiving socket splits them.
    None when the kernel has no UDP GSO."""
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError:
        return None
    sendmsg = sock.sendmsg
    ancillary: dict[int, list[tuple[int, int, bytes]]] = {}

    def send(segments: list[bytes], remote: Address) -> None:
        size = len(segments[0])
        cmsg = ancillary.get(size)
        if cmsg is None:
            cmsg = ancillary[size] = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))]
        sendmsg(segments, cmsg, 0, remote)

    return send


def receive_segments(port: Any, protocol: Any) -> bool:
    """Let a Twisted UDP port take coalesced datagrams (``UDP_GRO``): a run of same-size
    datagrams from one peer -- what :func:`segment_sender` sends, or what the NIC's GRO
    merged -- comes up in one ``recvmsg`` with the segment size beside it, instead of one
    system call each.  The port's ``doRead`` is replaced by one that cuts the data at that
    size and hands every datagram, as it was sent, to ``protocol.datagramReceived``, as
    Twisted's would.  False, and nothing changed, when the kernel has no UDP GRO."""
    sock: socket.socket = port.socket
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    recvmsg = sock.recvmsg
    ipv6 = sock.family == socket.AF_INET6
    budget = int(getattr(port, "maxThroughput", 256 * 1024))
    size_limit = int(getattr(port, "maxPacketSize", 65535))

    def doRead() -> None:
        received = protocol.datagramReceived
        read = 0
        while read < budget:
            try:
                data, ancillary, _flags, addr = recvmsg(size_limit, _GRO_CMSG_SPACE)
            except OSError as exc:
                # Twisted's udp.Port: EAGAIN/EINTR end the wakeup, and so does ECONNREFUSED
                # on an unconnected socket; anything else is the port's end.
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED):
                    return
                raise
            read += len(data)
            if ipv6:
                addr = addr[:2]
            segment = 0
            for level, kind, value in ancillary:
                if level == SOL_UDP and kind == UDP_GRO:
                    segment = int.from_bytes(value[:4], sys.byteorder)
            try:
                if 0 < segment < len(data):
                    for start in range(0, len(data), segment):
                        received(data[start : start + segment], addr)
                else:
                    received(data, addr)
            except Exception:
                log.exception("datagram from %s", addr)

    port.doRead = doRead
    return True


def size_esp_socket(sock: socket.socket, size: int = ESP_RECEIVE_BUFFER) -> int:
    """Give the UDP socket ESP arrives on a receive buffer for bursts: with the default
    (``net.core.rmem_default``, about 200 KB, some 90 full-size datagrams) a dataplane that
    is off the CPU for a few milliseconds loses a window's worth of a TCP flow in the kernel
    (``UdpRcvbufErrors``), which the sender then retransmits and we encrypt twice.  As root
    ``SO_RCVBUFFORCE`` passes ``net.core.rmem_max``; otherwise ``SO_RCVBUF`` up to it.
    Returns the size the kernel granted (it doubles the request for its bookkeeping)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            log.warning("ESP socket receive buffer: %s", exc)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def sa_from_json(d: dict[str, Any]) -> SaSpec:
    """One manually keyed SA of the runner's config (keys in hex)."""

    def sel(items: list[str]) -> tuple[TrafficSelector, ...]:
        return tuple(TrafficSelector.from_network(x) for x in items)

    lt = d.get("lifetimes", {})
    return SaSpec(
        ike_sa=bytes.fromhex(d.get("ike_sa", "00" * 8)),
        name=d.get("name", "manual"),
        spi_in=int(d["spi_in"], 16) if isinstance(d["spi_in"], str) else d["spi_in"],
        spi_out=int(d["spi_out"], 16) if isinstance(d["spi_out"], str) else d["spi_out"],
        transform=EspTransform(d["encr_id"], d["encr_key_bits"], d.get("integ_id", 0)),
        encr_key_in=bytes.fromhex(d["encr_key_in"]),
        integ_key_in=bytes.fromhex(d.get("integ_key_in", "")),
        encr_key_out=bytes.fromhex(d["encr_key_out"]),
        integ_key_out=bytes.fromhex(d.get("integ_key_out", "")),
        local_ts=sel(d["local_ts"]),
        remote_ts=sel(d["remote_ts"]),
        local=(d.get("local", "192.0.2.1"), 4500),
        remote=(d["remote"][0], int(d["remote"][1])),
        esn=bool(d.get("esn", False)),
        replay_window=int(d.get("replay_window", 128)),
        lifetimes=Lifetimes(**lt),
    )


class _Control(LineReceiver):
    """JSON lines on a UNIX socket: {"op": "install", "sa": {...}}, {"op": "delete",
    "spi_in": "c0000001"}, {"op": "update", "spi_in": ..., "local_ts": [...], "remote_ts":
    [...]}, {"op": "stats"}; each answered with one JSON line."""

    delimiter = b"\n"

    def __init__(self, dp: UserspaceDataplane) -> None:
        self.dp = dp

    @defer.inlineCallbacks
    def lineReceived(self, line: bytes) -> Any:
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "install":
                yield self.dp.install_child_sa(sa_from_json(req["sa"]))
                reply: dict[str, Any] = {"ok": True}
            elif op == "delete":
                yield self.dp.delete_child_sa(int(req["spi_in"], 16))
                reply = {"ok": True}
            elif op == "update":
                yield self.dp.update_selectors(
                    int(req["spi_in"], 16),
                    tuple(TrafficSelector.from_network(x) for x in req["local_ts"]),
                    tuple(TrafficSelector.from_network(x) for x in req["remote_ts"]),
                )
                reply = {"ok": True}
            elif op == "stats":
                reply = {"ok": True, "stats": self.dp.stats_now()}
            else:
                reply = {"ok": False, "error": f"unknown op {op}"}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        transport: Any = self.transport
        transport.write(json.dumps(reply).encode() + b"\n")


def main(argv: list[str] | None = None) -> int:
    """Standalone userspace dataplane.  Config (JSON)::

        {"listen": "192.0.2.1", "port": 4500, "ifname": "esp0", "mtu": 1400,
         "addresses": ["10.3.0.2/32"], "control": "/path/ctl.sock",
         "sas": [{"spi_in": "c0000001", "spi_out": "c0000002", "encr_id": 20,
                  "encr_key_bits": 128, "integ_id": 0, "encr_key_in": "<hex>",
                  "encr_key_out": "<hex>", "local_ts": ["10.1.0.0/16"],
                  "remote_ts": ["10.3.0.2/32"], "remote": ["192.0.2.2", 4500]}]}

    Prints "READY <ifname>" on stdout when the TUN device is up and the SAs installed.
    """
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    parser = argparse.ArgumentParser(prog="python -m gateway.dataplane.userspace")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    spec = json.loads(args.config.read_text())
    port_box: list[EspUdpPort] = []

    def send(data: bytes, remote: Address) -> None:
        port_box[0].send(data, remote)

    dp = UserspaceDataplane(
        reactor,
        send,
        ifname=spec.get("ifname", "nea-esp0"),
        mtu=int(spec.get("mtu", 1400)),
        addresses=spec.get("addresses", ()),
    )
    dp.on_event = lambda event: log.info("event %r", event)
    port = EspUdpPort(dp, spec.get("listen", "0.0.0.0"), int(spec.get("port", 4500)))  # noqa: S104
    port_box.append(port)

    @defer.inlineCallbacks
    def boot() -> Any:
        try:
            yield dp.start()
            udp = reactor.listenUDP(port.port, port, interface=port.host, maxPacketSize=65535)
            dp.send_esp = socket_sender(udp)  # straight to the socket, not through send()
            dp.send_esp_segments = segment_sender(udp.socket)
            receive_segments(udp, port)
            size_esp_socket(udp.socket)
            for sa in spec.get("sas", ()):
                yield dp.install_child_sa(sa_from_json(sa))
            if spec.get("control"):
                factory = protocol.Factory.forProtocol(lambda: _Control(dp))
                reactor.listenUNIX(spec["control"], factory)
            print(f"READY {dp.ifname}", flush=True)
        except Exception:
            log.exception("start-up failed")
            reactor.stop()

    def on_term(signum: int, frame: Any) -> None:
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, on_term)
    reactor.callWhenRunning(boot)
    reactor.run()
    if spec.get("stats_file"):
        Path(spec["stats_file"]).write_text(json.dumps(dp.stats_now()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
