"""The IPsec dataplane: userspace ESP on a TUN device or the kernel's XFRM (issue 7).

* :mod:`gateway.dataplane.esp` - sans-I/O ESP (RFC 4303/3948/4106/4868/7634) engine;
* :mod:`gateway.dataplane.base` - the :class:`~gateway.dataplane.base.Dataplane` interface;
* :mod:`gateway.dataplane.userspace` / :mod:`gateway.dataplane.xfrm` - the two backends;
* :mod:`gateway.dataplane.select` - ``auto | xfrm | userspace | none`` at start-up;
* :mod:`gateway.dataplane.bridge` - :class:`~gateway.dataplane.bridge.DaemonDataplane`, the
  hooks ``gateway.daemon`` calls.

:func:`create_dataplane` is the daemon's entry point (``gateway.daemon.service.make_dataplane``
calls it with the configured kind).  It is imported lazily so that ``gateway.dataplane.esp``
stays free of Twisted.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["create_dataplane"]


def create_dataplane(kind: str, reactor: Any = None, **options: Any) -> Any:
    """Build and start the backend ``kind`` (``auto``, ``xfrm``, ``userspace``, ``none``) on
    ``reactor`` (default: the global one) and wrap it in a
    :class:`~gateway.dataplane.bridge.DaemonDataplane`.

    Runs at start-up, before the reactor: the kernel probe is one quick netlink exchange done
    inline; everything later goes through the netlink worker thread.  Raises
    :class:`~gateway.dataplane.base.DataplaneUnavailable` when ``kind`` cannot work here.
    ``options`` go to :func:`gateway.dataplane.select.create_dataplane` (``ifname``, ``mtu``,
    ``addresses``) and :class:`~gateway.dataplane.bridge.DaemonDataplane` (``lifetimes``,
    ``replay_window``).  For the userspace backend the daemon must call ``set_sender`` with a
    function that writes ESP from its port-4500 socket.
    """
    from twisted.python.failure import Failure

    from gateway.dataplane.base import NetlinkWorker
    from gateway.dataplane.bridge import DaemonDataplane
    from gateway.dataplane.select import create_dataplane as select

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    bridge_opts = {k: options.pop(k) for k in ("lifetimes", "replay_window") if k in options}
    box: list[DaemonDataplane] = []
    worker = NetlinkWorker(reactor)

    def send(data: bytes, remote: Any) -> None:
        box[0].send_esp(data, remote)

    # The probe runs inline (the reactor is not running yet); start() then queues the TUN
    # link-up on the worker thread.
    d = select(kind, reactor, send_esp=send, netlink=NetlinkWorker(None), start=False, **options)
    out: list[Any] = []
    d.addBoth(out.append)
    if isinstance(out[0], Failure):
        worker.stop()
        out[0].raiseException()
    backend = out[0]
    backend.netlink = worker
    bridge = DaemonDataplane(backend, **bridge_opts)
    box.append(bridge)
    started: list[Any] = []

    def done(outcome: Any) -> None:
        started.append(outcome)
        if isinstance(outcome, Failure):
            # Also when it fails later, on the netlink thread (e.g. link up refused).
            logging.getLogger("gateway.dataplane").error(
                "dataplane %s failed to start: %s", backend.backend, outcome.getErrorMessage()
            )

    backend.start().addBoth(done)
    if started and isinstance(started[0], Failure):
        worker.stop()
        started[0].raiseException()  # e.g. the TUN device cannot be created
    return bridge
