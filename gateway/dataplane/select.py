"""Start-up choice of the dataplane backend: ``dataplane = "auto" | "xfrm" | "userspace" | "none"``.

``auto`` takes XFRM when the kernel can do ESP (probed with a well-formed XFRM NEWSA that is
removed at once) and userspace ESP on a TUN device otherwise, and logs why.  An explicit
choice that cannot work raises :class:`~gateway.dataplane.base.DataplaneUnavailable` naming
what is missing.  The reason ends up in ``stats()["reason"]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer

from gateway.dataplane.base import (
    Dataplane,
    DataplaneUnavailable,
    NetlinkWorker,
    NullDataplane,
)
from gateway.dataplane.userspace import UserspaceDataplane
from gateway.dataplane.xfrm import XfrmDataplane, XfrmKernel, kernel_esp_support
from ike.sa import Address

__all__ = ["MODES", "create_dataplane", "tun_available"]

log = logging.getLogger("gateway.dataplane")

MODES = ("auto", "xfrm", "userspace", "none")


def tun_available() -> tuple[bool, str]:
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun is missing (kernel without CONFIG_TUN, or no device node)"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return False, "/dev/net/tun is not readable and writable (needs CAP_NET_ADMIN)"
    return True, "/dev/net/tun is available"


@defer.inlineCallbacks
def create_dataplane(
    mode: str,
    reactor: Any,
    *,
    send_esp: Callable[[bytes, Address], None] | None = None,
    ifname: str = "nea-esp0",
    mtu: int = 1400,
    addresses: Iterable[str] = (),
    netlink: NetlinkWorker | None = None,
    probe: Callable[[], tuple[bool, str]] = kernel_esp_support,
    kernel_factory: Callable[[], XfrmKernel] = XfrmKernel,
    start: bool = True,
) -> Any:
    """Build (and by default start) the configured backend; fires with the
    :class:`~gateway.dataplane.base.Dataplane`.

    ``send_esp(data, remote)`` is needed by the userspace backend: it writes a datagram from
    the IKE socket bound to port 4500 (without the non-ESP marker).
    """
    if mode not in MODES:
        raise DataplaneUnavailable(f"dataplane = {mode!r}: choose one of {', '.join(MODES)}")
    worker = netlink or NetlinkWorker(reactor)
    dp: Dataplane
    if mode == "none":
        dp = NullDataplane()
    else:
        esp_ok, why = (False, "not probed")
        if mode in ("auto", "xfrm"):
            esp_ok, why = yield worker.call(probe)
        if mode == "xfrm" and not esp_ok:
            raise DataplaneUnavailable(f'dataplane = "xfrm" cannot work: {why}')
        if esp_ok:
            dp = XfrmDataplane(
                reactor,
                netlink=worker,
                reason=f"{mode}: {why}",
                kernel_factory=kernel_factory,
            )
        else:
            tun_ok, tun_why = tun_available()
            if not tun_ok:
                if mode == "auto":
                    raise DataplaneUnavailable(
                        f'dataplane = "auto": no kernel ESP ({why}) and no userspace '
                        f"dataplane ({tun_why})"
                    )
                raise DataplaneUnavailable(f'dataplane = "userspace" cannot work: {tun_why}')
            if send_esp is None:
                raise DataplaneUnavailable(
                    "the userspace dataplane needs the IKE socket on port 4500 to send ESP"
                )
            reason = (
                f"auto: {why}; using userspace ESP on a TUN device"
                if mode == "auto"
                else "configured: userspace"
            )
            dp = UserspaceDataplane(
                reactor,
                send_esp,
                ifname=ifname,
                mtu=mtu,
                addresses=addresses,
                netlink=worker,
                reason=reason,
            )
    log.info("dataplane %s (%s)", dp.backend, dp.reason)
    if start:
        yield dp.start()
    return dp
