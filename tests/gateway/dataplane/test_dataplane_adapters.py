"""The Twisted-side adapters without root: UserspaceDataplane with a fake reactor (Clock),
the DaemonDataplane bridge, NullDataplane, and the XFRM message layouts against the kernel
ABI (linux/include/uapi/linux/xfrm.h)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from gateway.dataplane import xfrm_msg as xm
from gateway.dataplane.base import NullDataplane, spec_from_event
from gateway.dataplane.bridge import DaemonDataplane
from gateway.dataplane.esp import Lifetimes, SaHardExpired, SaSoftExpired
from gateway.dataplane.userspace import UserspaceDataplane
from gateway.dataplane.xfrm import XfrmDataplane, xfrm_algorithms
from ike.sa import ChildSaDeleted, ChildSaInstalled
from tests.gateway.dataplane.esp_helpers import (
    CBC_SHA1,
    CBC_SHA256,
    CBC_SHA512,
    CHACHA,
    GCM128,
    GCM256,
    ipv4,
    sa_pair,
    ts,
)


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred did not fire"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class FakeTun:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.write_errors = 0

    def write(self, packet: bytes) -> None:
        self.written.append(packet)


def userspace(sent: list[tuple[bytes, Any]], clock: Clock | None = None) -> UserspaceDataplane:
    from gateway.dataplane.base import NetlinkWorker

    dp = UserspaceDataplane(
        clock or Clock(),
        lambda data, remote: sent.append((data, remote)),
        manage_routes=False,
        netlink=NetlinkWorker(None),
    )
    dp.tun = FakeTun()  # type: ignore[assignment]
    return dp


def test_userspace_packets_both_ways_and_stats() -> None:
    a, b = sa_pair(GCM128)
    sent_gw: list[tuple[bytes, Any]] = []
    sent_cl: list[tuple[bytes, Any]] = []
    gw, cl = userspace(sent_gw), userspace(sent_cl)
    result(gw.install_child_sa(a))
    result(cl.install_child_sa(b))
    pkt = ipv4("10.1.0.5", "10.3.0.2")
    gw._from_tun(pkt)
    ((data, remote),) = sent_gw
    assert remote == ("192.0.2.2", 4500)
    cl.esp_received(data, ("192.0.2.1", 4500), ("192.0.2.2", 4500))
    assert cl.tun.written == [pkt]  # type: ignore[union-attr]
    st = result(cl.stats())
    assert st["backend"] == "userspace" and st["packets_in"] == 1
    assert st["child_sas"][0]["spi_in"] == f"{b.spi_in:08x}"

    # A send error (socket buffer full) is counted, never raised into the reactor.
    def boom(data: bytes, remote: Any) -> None:
        raise BlockingIOError(11, "EAGAIN")

    gw.send_esp = boom
    gw._from_tun(pkt)
    assert gw.stats_now()["send_errors"] == 1
    result(gw.delete_child_sa(a.spi_in))
    gw._from_tun(pkt)
    assert gw.stats_now()["drops"]["no_policy"] == 1


def _tun_pair(dp: UserspaceDataplane) -> socket.socket:
    """A TunDevice on one end of a datagram socketpair; the other end plays the kernel."""
    from gateway.dataplane.userspace import TunDevice

    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    dp.tun = TunDevice(ours.detach(), "tun-test", dp._from_tun, dp._flush)
    return kernel


def test_userspace_batches_one_wakeup_into_segmented_sends() -> None:
    a, b = sa_pair(GCM128)
    sent: list[tuple[bytes, Any]] = []
    segmented: list[tuple[list[bytes], Any]] = []
    gw, cl = userspace(sent), userspace([])
    gw.send_esp_segments = lambda segs, remote: segmented.append((list(segs), remote))
    result(gw.install_child_sa(a))
    result(cl.install_child_sa(b))
    kernel = _tun_pair(gw)
    big = [ipv4("10.1.0.5", "10.3.0.2", payload=bytes([i]) * 1000) for i in range(5)]
    short = ipv4("10.1.0.5", "10.3.0.2", payload=b"s" * 100)
    tail = [ipv4("10.1.0.5", "10.3.0.2", payload=bytes([i]) * 1000) for i in range(2)]
    for pkt in [*big, short, *tail]:
        kernel.send(pkt)
    assert gw.tun is not None
    gw.tun.doRead()
    # Same-length packets and the shorter one that ends them; the rest at the end of the
    # wakeup; nothing through send_esp.
    assert [len(segs) for segs, _ in segmented] == [6, 2] and sent == []
    assert all(remote == ("192.0.2.2", 4500) for _, remote in segmented)
    assert len({len(x) for x in segmented[0][0][:5]}) == 1
    for segs, remote in segmented:
        for data in segs:
            cl.esp_received(data, ("192.0.2.1", 4500), remote)
    assert cl.tun.written == [*big, short, *tail]  # type: ignore[union-attr]

    # One packet alone goes through send_esp.
    kernel.send(big[0])
    gw.tun.doRead()
    assert len(sent) == 1 and len(segmented) == 2
    gw.tun.close()
    kernel.close()


def test_userspace_segmented_send_errors() -> None:
    import errno

    a, _ = sa_pair(GCM128)
    sent: list[tuple[bytes, Any]] = []
    calls: list[int] = []
    dp = userspace(sent)
    result(dp.install_child_sa(a))
    pkt = ipv4("10.1.0.5", "10.3.0.2", payload=b"x" * 1000)

    def full(segs: list[bytes], remote: Any) -> None:
        calls.append(len(segs))
        raise BlockingIOError(errno.EAGAIN, "EAGAIN")

    dp.send_esp_segments = full
    for _ in range(3):
        dp._from_tun(pkt)
    dp._flush()
    assert dp.send_errors == 3 and sent == [] and calls == [3]

    # The kernel refuses to segment (longer than the path MTU): one by one, now and later.
    def refused(segs: list[bytes], remote: Any) -> None:
        calls.append(len(segs))
        raise OSError(errno.EINVAL, "EINVAL")

    dp.send_esp_segments = refused
    for _ in range(3):
        dp._from_tun(pkt)
    dp._flush()
    assert len(sent) == 3 and dp.segment_fallbacks == 1 and calls == [3, 3]
    for _ in range(3):
        dp._from_tun(pkt)
    dp._flush()
    assert len(sent) == 6 and calls == [3, 3]
    assert dp.stats_now()["segment_fallbacks"] == 1


def test_segment_sender_gives_separate_datagrams() -> None:
    from gateway.dataplane.userspace import segment_sender

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    send = segment_sender(tx)
    if send is None:
        pytest.skip("no UDP GSO in this kernel")
    segs = [b"a" * 300, b"b" * 300, b"c" * 120]
    send(segs, rx.getsockname())
    assert [rx.recv(2048) for _ in segs] == segs
    rx.close()
    tx.close()


def test_receive_segments_hands_over_each_datagram() -> None:
    from gateway.dataplane.userspace import receive_segments, segment_sender

    class Port:
        def __init__(self) -> None:
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.socket.bind(("127.0.0.1", 0))
            self.socket.setblocking(False)

    class Proto:
        def __init__(self) -> None:
            self.got: list[tuple[bytes, Any]] = []

        def datagramReceived(self, data: bytes, addr: Any) -> None:
            self.got.append((data, addr))

    port, proto = Port(), Proto()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    send = segment_sender(tx)
    if send is None or not receive_segments(port, proto):
        pytest.skip("no UDP GSO/GRO in this kernel")
    segs = [bytes([i]) * 700 for i in range(5)] + [b"last"]
    send(segs, port.socket.getsockname())
    tx.sendto(b"\xff", port.socket.getsockname())
    tx.sendto(b"alone", port.socket.getsockname())
    import time

    time.sleep(0.05)
    port.doRead()  # type: ignore[attr-defined]
    assert [d for d, _ in proto.got] == [*segs, b"\xff", b"alone"]
    assert {a for _, a in proto.got} == {tx.getsockname()}
    port.socket.close()
    tx.close()


def test_userspace_lifetimes_raise_events_on_the_clock() -> None:
    clock = Clock()
    a, _ = sa_pair(lifetimes=Lifetimes(soft_seconds=30, hard_seconds=40))
    dp = userspace([], clock)
    events: list[Any] = []
    dp.on_event = events.append
    result(dp.install_child_sa(a))
    clock.advance(29)
    assert events == []
    clock.advance(1)
    assert events == [SaSoftExpired(a.ike_sa, a.spi_in, "time")]
    clock.advance(10)
    assert events[-1] == SaHardExpired(a.ike_sa, a.spi_in, "time")
    assert dp.child_sas(a.ike_sa) == []
    assert not clock.getDelayedCalls()


def test_userspace_update_selectors_and_bad_spec() -> None:
    a, _ = sa_pair(a_ts=(ts("10.66.0.0/24"),))
    sent: list[tuple[bytes, Any]] = []
    dp = userspace(sent)
    result(dp.install_child_sa(a))
    dp._from_tun(ipv4("10.1.0.5", "10.3.0.2"))
    assert not sent
    result(dp.update_selectors(a.spi_in, (ts("10.0.0.0/8"),), a.remote_ts))
    dp._from_tun(ipv4("10.1.0.5", "10.3.0.2"))
    assert len(sent) == 1
    from dataclasses import replace

    with pytest.raises(Exception, match="reserved"):
        result(dp.install_child_sa(replace(a, spi_in=5)))


def child_event(spec: Any, **kw: Any) -> ChildSaInstalled:
    return ChildSaInstalled(
        spec.ike_sa,
        spec.name,
        spec.spi_in,
        spec.spi_out,
        spec.transform.encr_id,
        spec.transform.encr_key_bits,
        spec.transform.integ_id,
        spec.encr_key_in,
        spec.integ_key_in,
        spec.encr_key_out,
        spec.integ_key_out,
        spec.local_ts,
        spec.remote_ts,
        spec.local,
        spec.remote,
        True,
        False,
        **kw,
    )


def test_spec_from_event_and_isolation_override() -> None:
    a, _ = sa_pair(CBC_SHA256)
    ev = child_event(a)
    s = spec_from_event(ev, local_ts=(ts("10.66.0.1/32"),))
    assert s.transform == CBC_SHA256 and s.local_ts == (ts("10.66.0.1/32"),)
    assert s.remote_ts == a.remote_ts and s.encr_key_in == a.encr_key_in
    assert "secret" not in repr(s) and a.encr_key_in.hex() not in repr(s)


def test_bridge_hooks_for_the_daemon() -> None:
    a, _ = sa_pair(GCM128)
    clock = Clock()
    backend = userspace([], clock)
    bridge = DaemonDataplane(backend, lifetimes=lambda ev: Lifetimes(soft_seconds=10))
    events: list[Any] = []
    bridge.on_event = events.append
    assert bridge.name == "userspace"
    ev = child_event(a)
    result(bridge.install(ev, local_ts=(ts("10.66.0.0/24"),)))
    assert backend.engine.sa_stat(a.spi_in).local_ts == ("10.66.0.0-10.66.0.255",)  # type: ignore[union-attr]
    result(bridge.move_endpoint(a.ike_sa, a.local_ts, a.remote_ts))
    assert backend.engine.sa_stat(a.spi_in).local_ts == ("10.1.0.0-10.1.255.255",)  # type: ignore[union-attr]
    assert bridge.esp_received(b"\x00" * 3, ("192.0.2.2", 4500), ("192.0.2.1", 4500)) is True
    assert result(bridge.stats())["backend"] == "userspace"
    bridge.rename_ike_sa(a.ike_sa, b"\x02" * 8)
    clock.advance(10)
    assert events == [SaSoftExpired(b"\x02" * 8, a.spi_in, "time")]
    result(bridge.delete(ChildSaDeleted(b"\x02" * 8, a.spi_in, a.spi_out)))
    assert bridge.child_sas(b"\x02" * 8) == []


def test_bridge_without_sender_counts() -> None:
    bridge = DaemonDataplane(NullDataplane())
    bridge.send_esp(b"x", ("192.0.2.2", 4500))
    assert bridge.no_sender == 1
    got: list[tuple[bytes, Any]] = []
    bridge.set_sender(lambda d, r: got.append((d, r)))
    bridge.send_esp(b"y", ("192.0.2.2", 4500))
    assert got == [(b"y", ("192.0.2.2", 4500))]
    assert bridge.esp_received(b"z", ("192.0.2.2", 4500), ("192.0.2.1", 4500)) is False


def test_null_dataplane() -> None:
    a, _ = sa_pair()
    dp = NullDataplane()
    result(dp.install_child_sa(a))
    assert dp.child_sas(a.ike_sa) == [a.spi_in]
    assert result(dp.stats()) == {"backend": "none", "reason": "configured: none", "child_sas": 1}
    result(dp.update_selectors(a.spi_in, a.local_ts, a.remote_ts))
    result(dp.delete_child_sa(a.spi_in))
    with pytest.raises(Exception, match="no CHILD_SA"):
        result(dp.update_selectors(a.spi_in, a.local_ts, a.remote_ts))


# --------------------------------------------------------------------------------------------
# XFRM layouts (sizes from the kernel's uapi/linux/xfrm.h on x86_64)


@pytest.mark.parametrize(
    ("cls", "size"),
    [
        (xm.xfrm_usersa_info, 224),
        (xm.xfrm_usersa_id, 24),
        (xm.xfrm_userspi_info, 232),
        (xm.xfrm_userpolicy_info, 168),
        (xm.xfrm_userpolicy_id, 64),
        (xm.xfrm_user_expire, 232),
        (xm.xfrm_user_acquire, 280),
        (xm.xfrm_user_polexpire, 176),
    ],
)
def test_xfrm_struct_sizes(cls: Any, size: int) -> None:
    msg = cls()
    for name, fmt in cls.fields:
        msg[name] = b"" if fmt.endswith("s") else 0
    msg["header"]["type"] = 0x10
    msg.encode()
    assert len(msg.data) == 16 + size  # nlmsghdr + body


def test_xfrm_nested_attribute_sizes() -> None:
    msg = xm.xfrm_userpolicy_info()
    for k, v in xm.zero_fields(xm.USERPOLICY_INFO_FIELDS).items():
        msg[k] = v
    tmpl = {n: (b"" if f.endswith("s") else 0) for n, f in xm._XfrmBase.user_tmpl.fields}
    msg["attrs"] = [("XFRMA_TMPL", tmpl), ("XFRMA_MARK", {"v": 1, "m": 0xFF})]
    msg["header"]["type"] = xm.XfrmMsg.NEWPOLICY
    msg.encode()
    # nlmsghdr + userpolicy_info + (4 + 64) tmpl + (4 + 8) mark
    assert len(msg.data) == 16 + 168 + 68 + 12


def test_xfrm_algorithm_names_and_key_bits() -> None:
    for t, attrs in (
        (GCM128, [("XFRMA_ALG_AEAD", "rfc4106(gcm(aes))", 160, 128)]),
        (GCM256, [("XFRMA_ALG_AEAD", "rfc4106(gcm(aes))", 288, 128)]),
        (CHACHA, [("XFRMA_ALG_AEAD", "rfc7539esp(chacha20,poly1305)", 288, 128)]),
        (
            CBC_SHA1,
            [
                ("XFRMA_ALG_CRYPT", "cbc(aes)", 256, None),
                ("XFRMA_ALG_AUTH_TRUNC", "hmac(sha1)", 160, 96),
            ],
        ),
        (
            CBC_SHA512,
            [
                ("XFRMA_ALG_CRYPT", "cbc(aes)", 256, None),
                ("XFRMA_ALG_AUTH_TRUNC", "hmac(sha512)", 512, 256),
            ],
        ),
    ):
        a, _ = sa_pair(t)
        got = xfrm_algorithms(a, inbound=True)
        assert [n for n, _ in got] == [x[0] for x in attrs]
        for (_, blob), (_, name, bits, extra) in zip(got, attrs, strict=True):
            assert blob[:64].rstrip(b"\0").decode() == name
            assert struct.unpack_from("I", blob, 64)[0] == bits
            if extra is not None:
                assert struct.unpack_from("I", blob, 68)[0] == extra


def test_xfrm_expire_notification_becomes_an_event() -> None:
    a, _ = sa_pair(CBC_SHA256)
    dp = XfrmDataplane(None)
    from gateway.dataplane.xfrm import _Installed

    dp._sas[a.spi_in] = _Installed(a, 3)
    events: list[Any] = []
    dp.on_event = events.append
    # Build an EXPIRE message as the kernel sends it and parse it with our marshal.
    msg = xm.xfrm_user_expire()
    for name, fmt in xm.xfrm_user_expire.fields:
        msg[name] = b"" if fmt.endswith("s") else 0
    msg["id_spi"] = a.spi_in
    msg["family"] = socket.AF_INET
    msg["hard"] = 0
    msg["header"]["type"] = xm.XfrmMsg.EXPIRE
    msg.encode()
    for parsed in xm.XfrmMarshal().parse(bytes(msg.data)):
        dp._on_notification(parsed)
    assert events == [SaSoftExpired(a.ike_sa, a.spi_in, "kernel")]
    dp.netlink.stop()


def test_bridge_install_failure_is_logged_and_counted() -> None:
    a, _ = sa_pair(GCM128)
    bridge = DaemonDataplane(userspace([]))
    from dataclasses import replace

    bad = child_event(replace(a, encr_key_in=b"short"))
    assert result(bridge.install(bad)) is None  # swallowed for the daemon's fire-and-forget
    assert bridge.errors == 1
    # move_endpoint reports failures to its caller.
    good = child_event(a)
    result(bridge.install(good))
    with pytest.raises(defer.FirstError):
        result(bridge.move_endpoint(a.ike_sa, (), a.remote_ts))
    assert bridge.errors == 2


def test_netlink_worker_runs_calls_off_the_reactor_thread() -> None:
    """Netlink I/O never blocks the reactor: calls run on the worker thread and come back
    through callFromThread."""
    import queue
    import threading

    from gateway.dataplane.base import NetlinkWorker

    class FakeReactor:
        def __init__(self) -> None:
            self.q: queue.Queue[Any] = queue.Queue()

        def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
            self.q.put((f, a, kw))

        def addSystemEventTrigger(self, *a: Any) -> None:
            return None

    r = FakeReactor()
    worker = NetlinkWorker(r)
    try:
        gate = threading.Event()
        d = worker.call(lambda: (gate.wait(5), threading.get_ident())[1])
        assert not d.called  # the caller (reactor) is not blocked while netlink works
        gate.set()
        f, a, kw = r.q.get(timeout=5)
        f(*a, **kw)
        assert result(d) != threading.get_ident()
        d2 = worker.call(lambda: 1 / 0)
        f, a, kw = r.q.get(timeout=5)
        f(*a, **kw)
        with pytest.raises(ZeroDivisionError):
            result(d2)
    finally:
        worker.stop()


def test_virtual_ip_becomes_the_route_source() -> None:
    dp = userspace([])
    bridge = DaemonDataplane(dp)
    result(bridge.add_virtual_ip("10.3.0.2/32"))
    assert dp._prefsrc((ts("10.3.0.2/32"),), 4) == "10.3.0.2"
    assert dp._prefsrc((ts("10.4.0.0/16"),), 4) is None
    result(bridge.remove_virtual_ip("10.3.0.2/32"))
    assert dp._prefsrc((ts("10.3.0.2/32"),), 4) is None
    assert result(DaemonDataplane(NullDataplane()).add_virtual_ip("10.3.0.2/32")) is None


class RecordingKernel:
    """Stands in for XfrmKernel: records SA and policy operations (the logic above netlink)."""

    def __init__(self, fail_policies: bool = False) -> None:
        self.sas: dict[tuple[str, int], int] = {}
        self.policies: dict[Any, tuple[Any, int]] = {}
        self.fail_policies = fail_policies
        self.updates: list[int] = []

    def add_sa(self, spec: Any, *, inbound: bool, reqid: int, update: bool = False) -> None:
        key = (spec.local[0], spec.spi_in) if inbound else (spec.remote[0], spec.spi_out)
        if update:
            self.updates.append(key[1])
        self.sas[key] = reqid

    def del_sa(self, dst: str, spi: int, mark: Any = None) -> None:
        from gateway.dataplane.base import DataplaneError

        if (dst, spi) not in self.sas:
            raise DataplaneError("no such SA", 3)  # ESRCH
        del self.sas[(dst, spi)]

    def policy(self, key: Any, *, tmpl: Any, priority: int, update: bool = True) -> None:
        from gateway.dataplane.base import DataplaneError

        if self.fail_policies:
            raise DataplaneError("refused", 22)
        self.policies[key] = (tmpl, priority)

    def del_policy(self, key: Any) -> None:
        from gateway.dataplane.base import DataplaneError

        if key not in self.policies:
            raise DataplaneError("no such policy", 2)  # ENOENT, as the kernel answers
        del self.policies[key]

    def alloc_spi(self, src: str, dst: str, reqid: int = 0) -> int:
        return 0xC0000123

    def close(self) -> None:
        return None


def xfrm_with(kernel: RecordingKernel) -> XfrmDataplane:
    from gateway.dataplane.base import NetlinkWorker

    dp = XfrmDataplane(None, netlink=NetlinkWorker(None), kernel_factory=lambda: kernel)  # type: ignore[arg-type,return-value]
    result(dp.start())
    return dp


def test_xfrm_install_rekey_delete_logic() -> None:
    k = RecordingKernel()
    dp = xfrm_with(k)
    old_a, _ = sa_pair(CBC_SHA256, spi_a=0x1000, spi_b=0x2000)
    result(dp.install_child_sa(old_a))
    assert k.sas == {("192.0.2.1", 0x1000): 1, ("192.0.2.2", 0x2000): 1}
    allow = {key for key, (tmpl, _) in k.policies.items() if tmpl is not None}
    block = {key for key, (tmpl, _) in k.policies.items() if tmpl is None}
    assert len(allow) == 3 and len(block) == 3  # out/in/fwd each
    # Rekey: an ALLOCSPI'd SPI is installed with UPDSA; the reqid and policies carry over.
    spi = result(dp.allocate_spi("192.0.2.2", "192.0.2.1"))
    from dataclasses import replace

    new_a = replace(sa_pair(CBC_SHA256)[0], spi_in=spi, spi_out=0x2001, replaces=0x1000)
    result(dp.install_child_sa(new_a))
    assert k.updates == [spi] and k.sas[("192.0.2.1", spi)] == 1
    result(dp.delete_child_sa(0x1000))
    assert ("192.0.2.1", 0x1000) not in k.sas and len(k.policies) == 6  # still used
    result(dp.delete_child_sa(spi))
    assert k.sas == {} and k.policies == {}


def test_xfrm_policy_failure_leaves_nothing_behind() -> None:
    k = RecordingKernel(fail_policies=True)
    dp = xfrm_with(k)
    a, _ = sa_pair(GCM128)
    with pytest.raises(Exception, match="refused"):
        result(dp.install_child_sa(a))
    assert k.sas == {} and k.policies == {} and dp.child_sas(a.ike_sa) == []
