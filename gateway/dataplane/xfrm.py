"""Kernel XFRM backend: SAs and policies through XFRM netlink (pyroute2 framework).

:class:`XfrmKernel` is the synchronous netlink side (one ``NETLINK_XFRM`` socket of pyroute2's
:class:`~pyroute2.netlink.nlsocket.NetlinkSocket` with the message classes of
:mod:`gateway.dataplane.xfrm_msg`); it runs only on the
:class:`~gateway.dataplane.base.NetlinkWorker` thread.  :class:`XfrmDataplane` is the
reactor-side :class:`~gateway.dataplane.base.Dataplane`: every call returns a Deferred, and
EXPIRE / ACQUIRE notifications arrive on a non-blocking multicast socket the reactor reads.

Per CHILD_SA (tunnel mode) it installs an inbound and an outbound SA (UDP-encapsulated when
the IKE_SA saw NAT or runs on 4500, replay window as XFRMA_REPLAY_ESN_VAL, marks) and, for
every pair of local and remote prefixes, OUT / IN / FWD policies whose template carries the
CHILD_SA's reqid.  Below them (lower priority) sit BLOCK policies for the remote selectors, so
an endpoint's traffic that no CHILD_SA policy allows is dropped, not routed in clear: this is
how an isolated endpoint is held to its remediation selectors.  :meth:`update_selectors`
replaces the allow policies of a reqid (quarantine -> allow) without touching the SAs.

The IKE socket needs two socket options for this backend (the daemon sets them with
:func:`prepare_ike_socket`): ``UDP_ENCAP`` = ESPINUDP on port 4500 so the kernel takes ESP off
it, and per-socket bypass policies so IKE itself is never encrypted.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import itertools
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReadDescriptor
from twisted.python import failure
from zope.interface import implementer

from gateway.dataplane import xfrm_msg as xm
from gateway.dataplane.base import (
    Acquire,
    DataplaneError,
    DataplaneEvent,
    DataplaneUnavailable,
    NetlinkWorker,
)
from gateway.dataplane.esp import SaHardExpired, SaSoftExpired, SaSpec
from ike.constants import EncrId
from ike.payloads import TrafficSelector
from ike.sa import Address

__all__ = [
    "XfrmDataplane",
    "XfrmKernel",
    "kernel_esp_support",
    "prepare_ike_socket",
    "xfrm_algorithms",
]

log = logging.getLogger("gateway.dataplane.xfrm")

IPPROTO_ESP = 50
NETLINK_XFRM = 6
REQ, ACK, CREATE, EXCL, DUMP = 0x1, 0x4, 0x400, 0x200, 0x300
SPI_MIN, SPI_MAX = 0xC0000000, 0xCFFFFFFF
PRIO_ALLOW, PRIO_BLOCK = 1000, 3000


# --------------------------------------------------------------------------------------------
# Algorithms


def xfrm_algorithms(spec: SaSpec, inbound: bool) -> list[tuple[str, bytes]]:
    """XFRMA_ALG_* attributes for one direction (Linux crypto API names)."""
    t = spec.transform
    ekey = spec.encr_key_in if inbound else spec.encr_key_out
    akey = spec.integ_key_in if inbound else spec.integ_key_out
    if t.encr_id == EncrId.ENCR_AES_GCM_16:
        return [("XFRMA_ALG_AEAD", xm.aead("rfc4106(gcm(aes))", ekey, 128))]
    if t.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
        return [("XFRMA_ALG_AEAD", xm.aead("rfc7539esp(chacha20,poly1305)", ekey, 128))]
    integ = t.integ
    if t.encr_id != EncrId.ENCR_AES_CBC or integ is None:
        raise DataplaneError(f"no XFRM name for ESP transform {t.name}")
    return [
        ("XFRMA_ALG_CRYPT", xm.algo("cbc(aes)", ekey)),
        ("XFRMA_ALG_AUTH_TRUNC", xm.algo_auth(f"hmac({integ[0]})", akey, integ[2] * 8)),
    ]


def _prefixes(selectors: tuple[TrafficSelector, ...]) -> list[tuple[str, int, int | None]]:
    """(prefix, protocol, port or None) for each selector; port ranges other than one port or
    all ports cannot be expressed as an XFRM selector and are refused."""
    out: list[tuple[str, int, int | None]] = []
    for ts in selectors:
        if (ts.start_port, ts.end_port) == (0, 65535):
            port = None
        elif ts.start_port == ts.end_port:
            port = ts.start_port
        else:
            raise DataplaneError(f"port range in {ts} cannot be an XFRM selector")
        for net in ipaddress.summarize_address_range(ts.start_addr, ts.end_addr):
            out.append((str(net), ts.ip_proto, port))
    return out


# --------------------------------------------------------------------------------------------
# Synchronous netlink side (worker thread only)


@dataclass(frozen=True, slots=True)
class PolicyKey:
    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None
    direction: int
    mark: tuple[int, int] | None = None


class XfrmKernel:
    """XFRM requests over one pyroute2 NETLINK_XFRM socket.  Raises :class:`DataplaneError`
    with the kernel's errno when a request is refused."""

    def __init__(self, netns: str | None = None) -> None:
        from pyroute2.netlink.nlsocket import AsyncNetlinkSocket, NetlinkSocket

        class AsyncXfrmSocket(AsyncNetlinkSocket):  # type: ignore[misc]
            marshal_class = xm.XfrmMarshal

        class XfrmSocket(NetlinkSocket):  # type: ignore[misc]
            async_class = AsyncXfrmSocket

        kwargs: dict[str, Any] = {"family": NETLINK_XFRM}
        if netns is not None:
            kwargs["netns"] = netns
        try:
            self.sock: Any = XfrmSocket(**kwargs)
        except OSError as exc:
            raise DataplaneUnavailable(f"cannot open an XFRM netlink socket: {exc}") from exc

    def close(self) -> None:
        self.sock.close()

    def request(self, msg: Any, msg_type: int, flags: int = REQ | ACK) -> list[Any]:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return list(self.sock.nlm_request(msg, msg_type, flags))
        except NetlinkError as exc:
            raise DataplaneError(
                f"XFRM request {msg_type:#x} refused: {errno_mod.errorcode.get(exc.code, '?')} "
                f"({exc})",
                exc.code,
            ) from exc

    # -- SAs --------------------------------------------------------------------------------

    def sa_message(
        self,
        spec: SaSpec,
        *,
        inbound: bool,
        reqid: int,
        sel_prefixlen: int | None = None,
    ) -> Any:
        """The xfrm_usersa_info of one direction (``sel_prefixlen`` only for tests that need a
        malformed message)."""
        local, remote = spec.local, spec.remote
        src, dst = (remote, local) if inbound else (local, remote)
        family = xm.family_of(dst[0])
        msg = xm.xfrm_usersa_info()
        f = xm.zero_fields(xm.USERSA_INFO_FIELDS)
        f.update(
            sel_family=0 if sel_prefixlen is None else family,
            sel_prefixlen_d=sel_prefixlen or 0,
            id_daddr=xm.addr16(dst[0]),
            id_spi=spec.spi_in if inbound else spec.spi_out,
            id_proto=IPPROTO_ESP,
            saddr=xm.addr16(src[0]),
            reqid=reqid,
            family=family,
            mode=xm.XFRM_MODE_TUNNEL,
            replay_window=0,
            flags=xm.XFRM_STATE_ESN if spec.esn else 0,
        )
        lt = spec.lifetimes
        f.update(
            xm.lifetime_fields(
                lt.soft_bytes,
                lt.hard_bytes,
                lt.soft_packets,
                lt.hard_packets,
                lt.soft_seconds,
                lt.hard_seconds,
            )
        )
        for k, v in f.items():
            msg[k] = v
        attrs: list[tuple[str, Any]] = list(xfrm_algorithms(spec, inbound))
        attrs.append(("XFRMA_REPLAY_ESN_VAL", xm.replay_esn(spec.replay_window if inbound else 0)))
        if spec.udp_encap:
            attrs.append(
                (
                    "XFRMA_ENCAP",
                    {
                        "encap_type": xm.UDP_ENCAP_ESPINUDP,
                        "encap_sport": src[1],
                        "encap_dport": dst[1],
                        "pad": 0,
                        "encap_oa": bytes(16),
                    },
                )
            )
        if spec.mark is not None:
            attrs.append(("XFRMA_MARK", {"v": spec.mark[0], "m": spec.mark[1]}))
        msg["attrs"] = attrs
        return msg

    def add_sa(self, spec: SaSpec, *, inbound: bool, reqid: int, update: bool = False) -> None:
        msg = self.sa_message(spec, inbound=inbound, reqid=reqid)
        if update:
            self.request(msg, xm.XfrmMsg.UPDSA)
        else:
            self.request(msg, xm.XfrmMsg.NEWSA, REQ | ACK | CREATE | EXCL)

    def _sa_id(self, dst: str, spi: int, mark: tuple[int, int] | None) -> Any:
        msg = xm.xfrm_usersa_id()
        msg["daddr"] = xm.addr16(dst)
        msg["spi"] = spi
        msg["family"] = xm.family_of(dst)
        msg["proto"] = IPPROTO_ESP
        msg["pad"] = 0
        if mark is not None:
            msg["attrs"] = [("XFRMA_MARK", {"v": mark[0], "m": mark[1]})]
        return msg

    def del_sa(self, dst: str, spi: int, mark: tuple[int, int] | None = None) -> None:
        self.request(self._sa_id(dst, spi, mark), xm.XfrmMsg.DELSA)

    def get_sa(self, dst: str, spi: int, mark: tuple[int, int] | None = None) -> dict[str, int]:
        """Counters of one SA (XFRM_MSG_GETSA)."""
        replies = self.request(self._sa_id(dst, spi, mark), xm.XfrmMsg.GETSA, REQ)
        for m in replies:
            if m["header"]["type"] == xm.XfrmMsg.NEWSA:
                return {
                    "bytes": m["cur_bytes"],
                    "packets": m["cur_packets"],
                    "replay": m["stats_replay"],
                    "integrity_failed": m["stats_integrity_failed"],
                }
        raise DataplaneError(f"GETSA {spi:08x}: no answer")

    def alloc_spi(self, src: str, dst: str, reqid: int = 0) -> int:
        """XFRM_MSG_ALLOCSPI: a larval inbound SA (src -> dst) with a kernel-chosen SPI."""
        msg = xm.xfrm_userspi_info()
        f = xm.zero_fields(xm.xfrm_userspi_info.fields)
        f.update(
            id_daddr=xm.addr16(dst),
            id_proto=IPPROTO_ESP,
            saddr=xm.addr16(src),
            family=xm.family_of(dst),
            mode=xm.XFRM_MODE_TUNNEL,
            reqid=reqid,
            min=SPI_MIN,
            max=SPI_MAX,
        )
        f.update(xm.lifetime_fields())
        for k, v in f.items():
            msg[k] = v
        for m in self.request(msg, xm.XfrmMsg.ALLOCSPI, REQ):
            if m["header"]["type"] == xm.XfrmMsg.NEWSA:
                return int(m["id_spi"])
        raise DataplaneError("ALLOCSPI: no answer")

    # -- policies ---------------------------------------------------------------------------

    def policy(
        self,
        key: PolicyKey,
        *,
        tmpl: tuple[str, str, int] | None,
        priority: int,
        update: bool = True,
    ) -> None:
        """Install (UPDPOLICY, or NEWPOLICY when ``update`` is False) one policy; ``tmpl`` =
        (outer src, outer dst, reqid) for an ESP tunnel, None for BLOCK."""
        msg = xm.xfrm_userpolicy_info()
        f = xm.zero_fields(xm.USERPOLICY_INFO_FIELDS)
        f.update(xm.selector_fields(key.src, key.dst, key.proto, key.sport, key.dport))
        f.update(xm.lifetime_fields())
        f.update(
            priority=priority,
            dir=key.direction,
            action=xm.XFRM_POLICY_ALLOW if tmpl else xm.XFRM_POLICY_BLOCK,
        )
        for k, v in f.items():
            msg[k] = v
        attrs: list[tuple[str, Any]] = []
        if tmpl is not None:
            src, dst, reqid = tmpl
            attrs.append(
                (
                    "XFRMA_TMPL",
                    {
                        "id_daddr": xm.addr16(dst),
                        "id_spi": 0,
                        "id_proto": IPPROTO_ESP,
                        "id_pad1": 0,
                        "id_pad2": 0,
                        "family": xm.family_of(dst),
                        "pad1": 0,
                        "saddr": xm.addr16(src),
                        "reqid": reqid,
                        "mode": xm.XFRM_MODE_TUNNEL,
                        "share": 0,
                        "optional": 0,
                        "pad2": 0,
                        "aalgos": 0xFFFFFFFF,
                        "ealgos": 0xFFFFFFFF,
                        "calgos": 0xFFFFFFFF,
                    },
                )
            )
        if key.mark is not None:
            attrs.append(("XFRMA_MARK", {"v": key.mark[0], "m": key.mark[1]}))
        msg["attrs"] = attrs
        if update:
            self.request(msg, xm.XfrmMsg.UPDPOLICY)
        else:
            self.request(msg, xm.XfrmMsg.NEWPOLICY, REQ | ACK | CREATE | EXCL)

    def del_policy(self, key: PolicyKey) -> None:
        msg = xm.xfrm_userpolicy_id()
        f = xm.zero_fields(xm.xfrm_userpolicy_id.fields)
        f.update(xm.selector_fields(key.src, key.dst, key.proto, key.sport, key.dport))
        f.update(dir=key.direction)
        for k, v in f.items():
            msg[k] = v
        if key.mark is not None:
            msg["attrs"] = [("XFRMA_MARK", {"v": key.mark[0], "m": key.mark[1]})]
        self.request(msg, xm.XfrmMsg.DELPOLICY)

    def dump_policies(self) -> list[dict[str, Any]]:
        msg = xm.xfrm_userpolicy_id()
        for k, v in xm.zero_fields(xm.xfrm_userpolicy_id.fields).items():
            msg[k] = v
        out = []
        for m in self.request(msg, xm.XfrmMsg.GETPOLICY, REQ | DUMP):
            if m["header"]["type"] != xm.XfrmMsg.NEWPOLICY:
                continue
            fam = m["sel_family"]
            tmpl = m.get_attr("XFRMA_TMPL")
            out.append(
                {
                    "src": f"{xm.addr_from16(m['sel_saddr'], fam)}/{m['sel_prefixlen_s']}",
                    "dst": f"{xm.addr_from16(m['sel_daddr'], fam)}/{m['sel_prefixlen_d']}",
                    "proto": m["sel_proto"],
                    "dir": m["dir"],
                    "action": m["action"],
                    "priority": m["priority"],
                    "reqid": tmpl["reqid"] if tmpl else None,
                    "tmpl_dst": xm.addr_from16(tmpl["id_daddr"], tmpl["family"]) if tmpl else None,
                }
            )
        return out


def kernel_esp_support(kernel: XfrmKernel | None = None) -> tuple[bool, str]:
    """Can this kernel do ESP?  Probes with a well-formed NEWSA (cbc(aes), hmac(sha256)) for a
    documentation address, deleting it at once: EPROTONOSUPPORT means no ESP transform,
    ENOSYS missing crypto.  Returns (ok, why)."""
    from gateway.dataplane.esp import EspTransform

    own = kernel is None
    try:
        k = kernel or XfrmKernel()
    except DataplaneUnavailable as exc:
        return False, str(exc)
    t = EspTransform(EncrId.ENCR_AES_CBC, 128, 12)
    probe = SaSpec(
        b"\0" * 8,
        "probe",
        0x100,
        0x101,
        t,
        bytes(16),
        bytes(32),
        bytes(16),
        bytes(32),
        (TrafficSelector.from_network("0.0.0.0/0"),),
        (TrafficSelector.from_network("0.0.0.0/0"),),
        ("192.0.2.254", 4500),
        ("192.0.2.253", 4500),
    )
    try:
        try:
            k.add_sa(probe, inbound=True, reqid=0)
        except DataplaneError as exc:
            if exc.errno == errno_mod.EPROTONOSUPPORT:
                return False, "the kernel has no ESP transform (CONFIG_INET_ESP is off)"
            if exc.errno == errno_mod.ENOSYS:
                return False, "the kernel lacks cbc(aes) or hmac(sha256)"
            if exc.errno == errno_mod.EEXIST:
                return True, "the kernel does ESP (probe SA already present)"
            return False, f"XFRM probe failed: {exc}"
        k.del_sa("192.0.2.254", 0x100)
        return True, "the kernel accepted an ESP SA over XFRM netlink"
    finally:
        if own:
            k.close()


def prepare_ike_socket(sock: socket.socket, *, encap: bool) -> None:
    """For the XFRM backend: IKE bypasses IPsec policies (IP_XFRM_POLICY / IPV6_XFRM_POLICY
    with an ALLOW policy per direction), and on port 4500 the kernel takes ESP off the socket
    (UDP_ENCAP = UDP_ENCAP_ESPINUDP, RFC 3948)."""
    v6 = sock.family == socket.AF_INET6
    level, opt = (socket.IPPROTO_IPV6, 35) if v6 else (socket.IPPROTO_IP, 17)
    for direction in (xm.XFRM_POLICY_IN, xm.XFRM_POLICY_OUT):
        pol = bytearray(168)
        # xfrm_selector.family (offset 40): the kernel refuses a policy without one (EINVAL)
        struct.pack_into("=H", pol, 40, sock.family)
        struct.pack_into("8Q", pol, 56, *([xm.XFRM_INF] * 4), 0, 0, 0, 0)
        struct.pack_into("IIBBBB", pol, 152, 0, 0, direction, xm.XFRM_POLICY_ALLOW, 0, 0)
        sock.setsockopt(level, opt, bytes(pol))
    if encap:
        sock.setsockopt(socket.IPPROTO_UDP, 100, xm.UDP_ENCAP_ESPINUDP)  # UDP_ENCAP


# --------------------------------------------------------------------------------------------
# Reactor side


@dataclass
class _Installed:
    spec: SaSpec
    reqid: int
    policies: list[PolicyKey] = field(default_factory=list)
    blocks: list[PolicyKey] = field(default_factory=list)


@implementer(IReadDescriptor)
class _Notifications:
    """Non-blocking NETLINK_XFRM socket in the EXPIRE and ACQUIRE groups, read by the reactor."""

    def __init__(self, on_message: Callable[[Any], None]) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        groups = (1 << (xm.XFRMNLGRP_ACQUIRE - 1)) | (1 << (xm.XFRMNLGRP_EXPIRE - 1))
        self.sock.bind((0, groups))
        self.sock.setblocking(False)
        self.marshal = xm.XfrmMarshal()
        self.on_message = on_message

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "xfrm-notify"

    def doRead(self) -> None:
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("XFRM notification socket: %s", exc)
                return
            try:
                for msg in self.marshal.parse(data):
                    self.on_message(msg)
            except Exception:
                log.exception("undecodable XFRM notification")

    def connectionLost(self, reason: failure.Failure) -> None:
        return None

    def close(self) -> None:
        self.sock.close()


class XfrmDataplane:
    """The XFRM backend (see the module docstring and :class:`~gateway.dataplane.base.Dataplane`).

    ``block_unmatched`` adds the BLOCK policies that hold an endpoint to its CHILD_SAs'
    selectors (quarantine enforcement); ``fwd`` adds FWD policies (a gateway forwarding to
    protected networks)."""

    backend = "xfrm"

    def __init__(
        self,
        reactor: Any,
        *,
        netlink: NetlinkWorker | None = None,
        reason: str = "configured: xfrm",
        fwd: bool = True,
        block_unmatched: bool = True,
        kernel_factory: Callable[[], XfrmKernel] = XfrmKernel,
    ) -> None:
        self.reactor = reactor
        self.netlink = netlink or NetlinkWorker(reactor)
        self.reason = reason
        self.fwd = fwd
        self.block_unmatched = block_unmatched
        self.kernel_factory = kernel_factory
        self.on_event: Callable[[DataplaneEvent], None] = lambda event: None
        self.kernel: XfrmKernel | None = None
        self._notify: _Notifications | None = None
        self._sas: dict[int, _Installed] = {}
        self._larval: set[int] = set()
        self._reqids = itertools.count(1)
        self._block_refs: dict[PolicyKey, int] = {}
        self.esp_on_ike_socket = 0

    # -- lifecycle --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.kernel = yield self.netlink.call(self.kernel_factory)
        if self.reactor is not None:
            try:
                self._notify = _Notifications(self._on_notification)
                self.reactor.addReader(self._notify)
            except OSError as exc:
                log.warning("no XFRM notifications (EXPIRE/ACQUIRE): %s", exc)
        log.info("XFRM dataplane (%s)", self.reason)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        for spi in list(self._sas):
            try:
                yield self.delete_child_sa(spi)
            except DataplaneError as exc:
                log.warning("removing CHILD_SA %08x: %s", spi, exc)
        if self._notify is not None:
            self.reactor.removeReader(self._notify)
            self._notify.close()
            self._notify = None
        if self.kernel is not None:
            kernel, self.kernel = self.kernel, None
            yield self.netlink.call(kernel.close)

    def _k(self) -> XfrmKernel:
        if self.kernel is None:
            raise DataplaneError("XFRM dataplane not started")
        return self.kernel

    # -- Dataplane API ----------------------------------------------------------------------

    @defer.inlineCallbacks
    def allocate_spi(self, remote: str, local: str) -> Any:
        k = self._k()
        spi = yield self.netlink.call(k.alloc_spi, remote, local)
        self._larval.add(spi)
        return spi

    @defer.inlineCallbacks
    def install_child_sa(self, spec: SaSpec) -> Any:
        spec.validate()
        k = self._k()
        old = self._sas.get(spec.replaces) if spec.replaces is not None else None
        reqid = spec.reqid or (old.reqid if old else next(self._reqids))
        inst = _Installed(spec, reqid)
        larval = spec.spi_in in self._larval
        yield self.netlink.call(self._install, k, spec, reqid, larval, inst)
        self._larval.discard(spec.spi_in)
        self._sas[spec.spi_in] = inst
        log.info("installed %r reqid %d", spec, reqid)

    def _install(
        self, k: XfrmKernel, spec: SaSpec, reqid: int, larval: bool, inst: _Installed
    ) -> None:
        k.add_sa(spec, inbound=True, reqid=reqid, update=larval)
        try:
            k.add_sa(spec, inbound=False, reqid=reqid)
        except DataplaneError:
            k.del_sa(spec.local[0], spec.spi_in, spec.mark)
            raise
        try:
            inst.policies = self._policy_keys(spec, spec.local_ts, spec.remote_ts)
            self._apply_policies(k, spec, reqid, inst.policies)
            if self.block_unmatched:
                inst.blocks = self._block_keys(spec)
                for key in inst.blocks:
                    if self._block_refs.get(key, 0) == 0:
                        k.policy(key, tmpl=None, priority=PRIO_BLOCK)
        except DataplaneError:
            # Leave nothing half-installed: the SAs go, and the policies unless another SA
            # of the same reqid (the one this rekeys) still needs them.
            for dst, spi in ((spec.local[0], spec.spi_in), (spec.remote[0], spec.spi_out)):
                try:
                    k.del_sa(dst, spi, spec.mark)
                except DataplaneError:
                    pass
            if not any(o.reqid == reqid for o in self._sas.values()):
                for key in inst.policies:
                    try:
                        k.del_policy(key)
                    except DataplaneError:
                        pass
            raise
        for key in inst.blocks:
            self._block_refs[key] = self._block_refs.get(key, 0) + 1

    def _policy_keys(
        self,
        spec: SaSpec,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> list[PolicyKey]:
        keys: list[PolicyKey] = []
        for (lnet, lproto, lport), (rnet, rproto, rport) in itertools.product(
            _prefixes(local_ts), _prefixes(remote_ts)
        ):
            if ipaddress.ip_network(lnet).version != ipaddress.ip_network(rnet).version:
                continue
            if lproto and rproto and lproto != rproto:
                continue
            proto = lproto or rproto
            keys.append(PolicyKey(lnet, rnet, proto, lport, rport, xm.XFRM_POLICY_OUT, spec.mark))
            keys.append(PolicyKey(rnet, lnet, proto, rport, lport, xm.XFRM_POLICY_IN, spec.mark))
            if self.fwd:
                keys.append(
                    PolicyKey(rnet, lnet, proto, rport, lport, xm.XFRM_POLICY_FWD, spec.mark)
                )
        return keys

    def _block_keys(self, spec: SaSpec) -> list[PolicyKey]:
        keys: list[PolicyKey] = []
        for rnet, _, _ in _prefixes(spec.remote_ts):
            anyn = "0.0.0.0/0" if ipaddress.ip_network(rnet).version == 4 else "::/0"
            if rnet == anyn:
                continue  # never block everything
            keys.append(PolicyKey(anyn, rnet, 0, None, None, xm.XFRM_POLICY_OUT, spec.mark))
            keys.append(PolicyKey(rnet, anyn, 0, None, None, xm.XFRM_POLICY_IN, spec.mark))
            if self.fwd:
                keys.append(PolicyKey(rnet, anyn, 0, None, None, xm.XFRM_POLICY_FWD, spec.mark))
        return keys

    def _apply_policies(
        self, k: XfrmKernel, spec: SaSpec, reqid: int, keys: list[PolicyKey]
    ) -> None:
        local, remote = spec.local[0], spec.remote[0]
        for key in keys:
            out = key.direction == xm.XFRM_POLICY_OUT
            tmpl = (local, remote, reqid) if out else (remote, local, reqid)
            plen = ipaddress.ip_network(key.src).prefixlen + ipaddress.ip_network(key.dst).prefixlen
            k.policy(key, tmpl=tmpl, priority=PRIO_ALLOW + 256 - plen)

    def _same_reqid(self, inst: _Installed) -> list[_Installed]:
        return [o for o in self._sas.values() if o is not inst and o.reqid == inst.reqid]

    @defer.inlineCallbacks
    def delete_child_sa(self, spi_in: int) -> Any:
        inst = self._sas.pop(spi_in, None)
        if inst is None:
            return
        k = self._k()
        keep_policies = bool(self._same_reqid(inst))
        gone_blocks: list[PolicyKey] = []
        for key in inst.blocks:
            self._block_refs[key] -= 1
            if self._block_refs[key] == 0:
                del self._block_refs[key]
                gone_blocks.append(key)
        yield self.netlink.call(self._remove, k, inst, keep_policies, gone_blocks)

    def _remove(
        self, k: XfrmKernel, inst: _Installed, keep_policies: bool, blocks: list[PolicyKey]
    ) -> None:
        spec = inst.spec
        errors: list[str] = []
        for dst, spi in ((spec.local[0], spec.spi_in), (spec.remote[0], spec.spi_out)):
            try:
                k.del_sa(dst, spi, spec.mark)
            except DataplaneError as exc:
                if exc.errno != errno_mod.ESRCH:
                    errors.append(str(exc))
        for key in ([] if keep_policies else inst.policies) + blocks:
            try:
                k.del_policy(key)
            except DataplaneError as exc:
                if exc.errno != errno_mod.ENOENT:
                    errors.append(str(exc))
        if errors:
            raise DataplaneError("; ".join(errors))

    @defer.inlineCallbacks
    def update_selectors(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> Any:
        inst = self._sas.get(spi_in)
        if inst is None:
            raise DataplaneError(f"no CHILD_SA {spi_in:08x}")
        k = self._k()
        new_keys = self._policy_keys(inst.spec, local_ts, remote_ts)
        old_keys = [key for key in inst.policies if key not in new_keys]

        def apply() -> None:
            self._apply_policies(k, inst.spec, inst.reqid, new_keys)
            for key in old_keys:
                try:
                    k.del_policy(key)
                except DataplaneError as exc:
                    if exc.errno != errno_mod.ENOENT:
                        raise

        yield self.netlink.call(apply)
        from dataclasses import replace

        for other in [inst, *self._same_reqid(inst)]:
            other.spec = replace(other.spec, local_ts=local_ts, remote_ts=remote_ts)
            other.policies = new_keys

    def child_sas(self, ike_sa: bytes) -> list[int]:
        return [spi for spi, inst in self._sas.items() if inst.spec.ike_sa == ike_sa]

    def esp_received(self, data: bytes, remote: Address, local: Address) -> None:
        # With UDP_ENCAP set on the IKE socket the kernel never hands ESP up; if it does, the
        # socket option is missing.
        self.esp_on_ike_socket += 1

    @defer.inlineCallbacks
    def stats(self) -> Any:
        k = self._k()
        sas = list(self._sas.values())

        def collect() -> list[dict[str, Any]]:
            out = []
            for inst in sas:
                s = inst.spec
                row: dict[str, Any] = {
                    "ike_sa": s.ike_sa.hex(),
                    "name": s.name,
                    "spi_in": f"{s.spi_in:08x}",
                    "spi_out": f"{s.spi_out:08x}",
                    "reqid": inst.reqid,
                    "transform": s.transform.name,
                    "local_ts": [str(t) for t in s.local_ts],
                    "remote_ts": [str(t) for t in s.remote_ts],
                }
                try:
                    cin = k.get_sa(s.local[0], s.spi_in, s.mark)
                    cout = k.get_sa(s.remote[0], s.spi_out, s.mark)
                    row.update(
                        packets_in=cin["packets"],
                        bytes_in=cin["bytes"],
                        packets_out=cout["packets"],
                        bytes_out=cout["bytes"],
                        replayed=cin["replay"],
                        auth_failed=cin["integrity_failed"],
                    )
                except DataplaneError as exc:
                    row["error"] = str(exc)
                out.append(row)
            return out

        rows = yield self.netlink.call(collect)
        return {
            "backend": self.backend,
            "reason": self.reason,
            "child_sas": rows,
            "esp_on_ike_socket": self.esp_on_ike_socket,
        }

    # -- notifications ----------------------------------------------------------------------

    def _on_notification(self, msg: Any) -> None:
        mtype = msg["header"]["type"]
        if mtype == xm.XfrmMsg.EXPIRE:
            spi = int(msg["id_spi"])
            inst = self._sas.get(spi) or next(
                (i for i in self._sas.values() if i.spec.spi_out == spi), None
            )
            if inst is None:
                return
            cls = SaHardExpired if msg["hard"] else SaSoftExpired
            event: DataplaneEvent = cls(inst.spec.ike_sa, inst.spec.spi_in, "kernel")
        elif mtype == xm.XfrmMsg.ACQUIRE:
            fam = msg["sel_family"]
            src = xm.addr_from16(msg["sel_saddr"], fam)
            dst = xm.addr_from16(msg["sel_daddr"], fam)
            event = Acquire(
                xm.addr_from16(msg["saddr"], fam),
                xm.addr_from16(msg["id_daddr"], fam),
                TrafficSelector.from_network(f"{src}/{msg['sel_prefixlen_s']}"),
                TrafficSelector.from_network(f"{dst}/{msg['sel_prefixlen_d']}"),
                msg["pol_index"],
            )
        else:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("dataplane event consumer failed on %r", event)
