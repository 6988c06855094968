"""XFRM backend against the real kernel, in a namespace of our own.

Policies are installed, read back (by our GETPOLICY dump and by iproute2 as an independent
decoder) and removed.  SAs: this machine's kernel has no ESP transform, and it validates an
SA message before it looks the ESP type up, so a well-formed NEWSA earns EPROTONOSUPPORT, one
with an AEAD the kernel's crypto lacks ENOSYS, and a malformed one EINVAL.  On a kernel with
ESP (detected from the kernel config, independently of our own probe) the same SAs must be
accepted, read back with counters, and removed.
"""

from __future__ import annotations

import errno
import gzip
import os
import platform
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from gateway.dataplane import xfrm_msg as xm
from gateway.dataplane.base import DataplaneError, DataplaneUnavailable, NetlinkWorker
from gateway.dataplane.esp import Lifetimes
from gateway.dataplane.select import create_dataplane
from gateway.dataplane.xfrm import (
    PolicyKey,
    XfrmDataplane,
    XfrmKernel,
    kernel_esp_support,
)
from tests.gateway.dataplane.esp_helpers import CBC_SHA256, GCM128, sa_pair, ts

pytestmark = pytest.mark.netns


def kernel_config_esp() -> bool | None:
    """CONFIG_INET_ESP from the kernel's own config (None when it cannot be read)."""
    paths = [Path("/proc/config.gz"), Path(f"/boot/config-{platform.release()}")]
    for p in paths:
        try:
            text = gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
        except OSError:
            continue
        return "CONFIG_INET_ESP=y" in text or "CONFIG_INET_ESP=m" in text
    if Path("/sys/module/esp4").exists():
        return True
    return None


def kernel_has_gcm() -> bool:
    try:
        text = Path("/proc/crypto").read_text()
    except OSError:
        return False
    return "gcm(aes)" in text or os.path.exists("/sys/module/gcm")


def result(d: defer.Deferred[Any]) -> Any:
    """The result of a Deferred that already fired (the inline netlink worker)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred did not fire"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def ip_xfrm(ns, *args: str) -> str:  # type: ignore[no-untyped-def]
    return ns.run("ip", "xfrm", *args).stdout


@pytest.fixture
def ns(netns):  # type: ignore[no-untyped-def]
    n = netns.namespace("xfrm")
    return n


def dataplane_in(ns) -> XfrmDataplane:  # type: ignore[no-untyped-def]
    dp = XfrmDataplane(
        None, netlink=NetlinkWorker(None), kernel_factory=lambda: XfrmKernel(netns=ns.name)
    )
    result(dp.start())
    return dp


def test_policies_installed_read_back_and_removed(ns) -> None:  # type: ignore[no-untyped-def]
    dp = dataplane_in(ns)
    k = dp.kernel
    assert k is not None
    a, _ = sa_pair(
        GCM128,
        a_ts=(ts("10.1.0.0/16"), ts("10.66.0.0/24")),
        b_ts=(ts("10.3.0.2/32"),),
    )
    keys = dp._policy_keys(a, a.local_ts, a.remote_ts)
    dp._apply_policies(k, a, 42, keys)
    blocks = dp._block_keys(a)
    for key in blocks:
        k.policy(key, tmpl=None, priority=3000)
    pols = k.dump_policies()
    allow = [p for p in pols if p["action"] == xm.XFRM_POLICY_ALLOW]
    block = [p for p in pols if p["action"] == xm.XFRM_POLICY_BLOCK]
    assert len(allow) == 6 and len(block) == 3  # 2 local x 1 remote x (out, in, fwd)
    out = {(p["src"], p["dst"]) for p in allow if p["dir"] == xm.XFRM_POLICY_OUT}
    assert out == {("10.1.0.0/16", "10.3.0.2/32"), ("10.66.0.0/24", "10.3.0.2/32")}
    assert all(p["reqid"] == 42 for p in allow)
    assert {p["tmpl_dst"] for p in allow if p["dir"] == xm.XFRM_POLICY_OUT} == {"192.0.2.2"}
    assert {p["tmpl_dst"] for p in allow if p["dir"] != xm.XFRM_POLICY_OUT} == {"192.0.2.1"}
    # iproute2 decodes what we installed.
    text = ip_xfrm(ns, "policy", "list")
    assert "src 10.1.0.0/16 dst 10.3.0.2/32" in text
    assert "dir fwd" in text and "action block" in text
    assert "tmpl src 192.0.2.1 dst 192.0.2.2" in text and "reqid 42 mode tunnel" in text
    # Quarantine -> allow: update_selectors on the reqid swaps the allow policies.
    from gateway.dataplane.xfrm import _Installed

    dp._sas[a.spi_in] = _Installed(a, 42, keys, blocks)
    result(dp.update_selectors(a.spi_in, (ts("10.0.0.0/8"),), a.remote_ts))
    out = {
        (p["src"], p["dst"])
        for p in k.dump_policies()
        if p["dir"] == xm.XFRM_POLICY_OUT and p["action"] == xm.XFRM_POLICY_ALLOW
    }
    assert out == {("10.0.0.0/8", "10.3.0.2/32")}
    # Removal: everything goes (the SAs were never there on a kernel without ESP).
    for key in dp._sas[a.spi_in].policies + blocks:
        k.del_policy(key)
    assert k.dump_policies() == []
    assert ip_xfrm(ns, "policy", "list").strip() == ""
    with pytest.raises(DataplaneError) as exc:
        k.del_policy(PolicyKey("10.9.0.0/16", "10.3.0.2/32", 0, None, None, 1))
    assert exc.value.errno == errno.ENOENT


def test_allocspi_gives_a_larval_sa(ns) -> None:  # type: ignore[no-untyped-def]
    dp = dataplane_in(ns)
    spi = result(dp.allocate_spi("192.0.2.2", "192.0.2.1"))
    assert 0xC0000000 <= spi <= 0xCFFFFFFF
    assert f"spi 0x{spi:08x}" in ip_xfrm(ns, "state", "list")


def test_new_sa_outcome_matches_the_kernel(ns) -> None:  # type: ignore[no-untyped-def]
    """EPROTONOSUPPORT here (no ESP), success on kernels with ESP; EINVAL when malformed."""
    has_esp = kernel_config_esp()
    probe_ok, why = kernel_esp_support(XfrmKernel(netns=ns.name))
    if has_esp is not None:
        assert probe_ok == has_esp, why  # our probe agrees with the kernel config
    else:
        has_esp = probe_ok
    dp = dataplane_in(ns)
    k = dp.kernel
    assert k is not None
    lt = Lifetimes(soft_bytes=10**9, hard_bytes=2 * 10**9, soft_seconds=3600, hard_seconds=3960)
    a, _ = sa_pair(CBC_SHA256, lifetimes=lt)
    # Malformed: an IPv4 selector with a 33-bit prefix.
    with pytest.raises(DataplaneError) as exc:
        k.request(k.sa_message(a, inbound=True, reqid=1, sel_prefixlen=33), xm.XfrmMsg.NEWSA)
    assert exc.value.errno == errno.EINVAL
    # Well-formed, cbc(aes) + hmac(sha256), UDP encapsulation, replay window 128.
    if not has_esp:
        with pytest.raises(DataplaneError) as exc:
            result(dp.install_child_sa(a))
        assert exc.value.errno == errno.EPROTONOSUPPORT
        assert ip_xfrm(ns, "state", "list").strip() == ""
        assert ip_xfrm(ns, "policy", "list").strip() == ""  # nothing half-installed
    else:
        result(dp.install_child_sa(a))
        state = ip_xfrm(ns, "state", "list")
        assert f"spi 0x{a.spi_in:08x}" in state and f"spi 0x{a.spi_out:08x}" in state
        assert "encap type espinudp sport 4500 dport 4500" in state
        assert "auth-trunc hmac(sha256)" in state and "enc cbc(aes)" in state
        stats = result(dp.stats())
        (row,) = stats["child_sas"]
        assert row["packets_in"] == 0 and "error" not in row
        result(dp.delete_child_sa(a.spi_in))
        assert ip_xfrm(ns, "state", "list").strip() == ""
        assert ip_xfrm(ns, "policy", "list").strip() == ""
    # AES-GCM: ENOSYS when the kernel's crypto has no gcm, else like the CBC SA.
    g, _ = sa_pair(GCM128, spi_a=0xC1000001, spi_b=0xC1000002)
    if not has_esp or not kernel_has_gcm():
        with pytest.raises(DataplaneError) as exc:
            result(dp.install_child_sa(g))
        want = errno.EPROTONOSUPPORT if kernel_has_gcm() else errno.ENOSYS
        assert exc.value.errno == want
    else:
        result(dp.install_child_sa(g))
        assert "rfc4106(gcm(aes))" in ip_xfrm(ns, "state", "list")
        result(dp.delete_child_sa(g.spi_in))


def test_backend_choice(ns, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """auto -> XFRM only with kernel ESP; an explicit impossible choice says what is missing."""
    probe = lambda: kernel_esp_support(XfrmKernel(netns=ns.name))  # noqa: E731
    has_esp, _ = probe()
    worker = NetlinkWorker(None)
    dp = result(
        create_dataplane(
            "auto",
            None,
            send_esp=lambda d, r: None,
            netlink=worker,
            probe=probe,
            start=False,
            kernel_factory=lambda: XfrmKernel(netns=ns.name),
        )
    )
    stats = result(dp.stats()) if dp.backend != "xfrm" else {"backend": "xfrm"}
    assert dp.backend == ("xfrm" if has_esp else "userspace")
    assert stats["backend"] == dp.backend
    if not has_esp:
        assert "no ESP transform" in dp.reason and "userspace" in dp.reason
        with pytest.raises(DataplaneUnavailable, match="CONFIG_INET_ESP"):
            result(create_dataplane("xfrm", None, netlink=worker, probe=probe, start=False))
    none = result(create_dataplane("none", None, netlink=worker, start=False))
    assert result(none.stats())["backend"] == "none"
    with pytest.raises(DataplaneUnavailable, match="choose one of"):
        result(create_dataplane("kernel", None, netlink=worker, start=False))
    monkeypatch.setattr("gateway.dataplane.select.tun_available", lambda: (False, "no tun"))
    with pytest.raises(DataplaneUnavailable, match="no tun"):
        result(create_dataplane("userspace", None, send_esp=lambda d, r: None, netlink=worker))


ACQUIRE_SCRIPT = r"""
import json, select, socket, sys
from gateway.dataplane.xfrm import PolicyKey, XfrmKernel, XfrmDataplane, _Notifications
from gateway.dataplane import xfrm_msg as xm
events = []
dp = XfrmDataplane(None)
dp.on_event = events.append
notes = _Notifications(dp._on_notification)
k = XfrmKernel()
k.policy(PolicyKey("10.8.0.1/32", "10.9.0.0/24", 0, None, None, xm.XFRM_POLICY_OUT),
         tmpl=("192.0.2.1", "192.0.2.2", 9), priority=1000)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.8.0.1", 0))
s.setblocking(False)
try:
    s.sendto(b"trigger", ("10.9.0.7", 9))
except OSError as exc:
    pass  # EAGAIN: the packet waits for an SA (larval state)
for _ in range(20):
    if select.select([notes], [], [], 0.25)[0]:
        notes.doRead()
    if events:
        break
ev = events[0]
out = {"src": ev.src, "dst": ev.dst, "local": str(ev.local_ts), "remote": str(ev.remote_ts)}
print(json.dumps(out))
"""


def test_acquire_notification_from_a_trap_policy(ns) -> None:  # type: ignore[no-untyped-def]
    """A packet that hits an OUT policy without an SA makes the kernel send XFRM_MSG_ACQUIRE
    to the multicast group; our listener turns it into an Acquire event."""
    import json
    import sys

    ns.run("ip", "link", "add", "tv0", "type", "veth", "peer", "name", "tv1")
    for dev in ("tv0", "tv1"):
        ns.run("ip", "link", "set", dev, "up")
    ns.run("ip", "addr", "add", "10.8.0.1/32", "dev", "tv0")
    ns.run("ip", "route", "add", "10.9.0.0/24", "dev", "tv0")
    repo = Path(__file__).resolve().parents[2]
    out = ns.run(sys.executable, "-c", ACQUIRE_SCRIPT, env={"PYTHONPATH": str(repo)}).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["dst"] == "192.0.2.2" and got["src"] == "192.0.2.1"
    assert got["local"] == "10.8.0.1-10.8.0.1" and got["remote"] == "10.9.0.7-10.9.0.7"


def test_newpolicy_exclusive_and_marks(ns) -> None:  # type: ignore[no-untyped-def]
    k = XfrmKernel(netns=ns.name)
    key = PolicyKey("10.1.0.0/16", "10.3.0.2/32", 6, None, 443, xm.XFRM_POLICY_OUT, (42, 0xFF))
    k.policy(key, tmpl=("192.0.2.1", "192.0.2.2", 3), priority=1200, update=False)
    with pytest.raises(DataplaneError) as exc:
        k.policy(key, tmpl=("192.0.2.1", "192.0.2.2", 3), priority=1200, update=False)
    assert exc.value.errno == errno.EEXIST
    text = ip_xfrm(ns, "policy", "list")
    assert "proto tcp dport 443" in text and "mark 0x2a/0xff" in text, text
    k.policy(key, tmpl=("192.0.2.1", "192.0.2.2", 4), priority=1100)  # UPDPOLICY replaces
    assert "reqid 4" in ip_xfrm(ns, "policy", "list")
    k.del_policy(key)
    assert ip_xfrm(ns, "policy", "list").strip() == ""
