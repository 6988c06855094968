"""Our IKE engine (gateway.ike_udp) plus our dataplane, composed the way the daemon should:
ChildSaInstalled -> ``install``, ChildSaDeleted -> ``delete``, ESP from port 4500 ->
``esp_received``, ``set_sender`` = port 4500's transport, SaSoftExpired -> rekey.

``python tests/gateway/dataplane/ike_esp_runner.py CONFIG.json`` - the JSON of
``python -m gateway.ike_udp`` plus ``"dataplane": {"kind": "userspace", "ifname": "...",
"isolate": ["10.66.0.1/32"]}`` (isolate: install every CHILD_SA with these local selectors
until ``{"op": "allow"}``) and ``"control": "/path.sock"`` (JSON lines: stats, allow,
rekey)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol
from twisted.protocols.basic import LineReceiver

from gateway.dataplane import create_dataplane
from gateway.dataplane.esp import SaHardExpired, SaSoftExpired
from gateway.dataplane.userspace import socket_sender
from gateway.ike_udp import IkeUdpService, _event_json, _load_peer
from ike.config import EngineConfig
from ike.payloads import TrafficSelector
from ike.sa import ChildSaDeleted, ChildSaInstalled, IkeEngine, IkeSaRekeyed

log = logging.getLogger("runner")


def main() -> int:
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg_path = Path(sys.argv[1])
    spec = json.loads(cfg_path.read_text())
    peers = tuple(_load_peer(p, cfg_path.parent) for p in spec["connections"])
    engine = IkeEngine(EngineConfig(peers=peers))
    dp_cfg = spec.get("dataplane", {})
    bridge = create_dataplane(
        dp_cfg.get("kind", "userspace"), reactor, ifname=dp_cfg.get("ifname", "nea-esp0")
    )
    isolate = [tuple(TrafficSelector.from_network(x) for x in dp_cfg.get("isolate", []))]
    events_path = Path(spec["events"])
    children: dict[int, ChildSaInstalled] = {}

    def on_event(event: Any) -> None:
        with events_path.open("a") as fh:
            fh.write(json.dumps(_event_json(event)) + "\n")
        if isinstance(event, ChildSaInstalled):
            children[event.spi_in] = event
            bridge.install(event, local_ts=isolate[0] or None)
        elif isinstance(event, ChildSaDeleted):
            children.pop(event.spi_in, None)
            bridge.delete(event)
        elif isinstance(event, IkeSaRekeyed):
            bridge.rename_ike_sa(event.ike_sa, event.new_ike_sa)

    service = IkeUdpService(engine, reactor, spec["listen"], on_event, bridge.esp_received)

    senders: list[Any] = []

    def send(data: bytes, remote: Any) -> None:
        # The daemon's recipe: ESP leaves from the IKE socket on 4500, straight to its socket.
        if not senders:
            senders.append(socket_sender(service.ports[4500].transport))
        senders[0](data, remote)

    bridge.set_sender(send)

    def dp_event(event: Any) -> None:
        log.info("dataplane event %r", event)
        if isinstance(event, SaSoftExpired):
            engine.rekey_child_sa(event.ike_sa, event.spi_in, service.now())
        elif isinstance(event, SaHardExpired):
            engine.delete_child_sa(event.ike_sa, event.spi_in, service.now())
        service.flush()

    bridge.on_event = dp_event

    class Control(LineReceiver):
        delimiter = b"\n"

        @defer.inlineCallbacks
        def lineReceived(self, line: bytes) -> Any:
            req = json.loads(line)
            try:
                if req["op"] == "stats":
                    reply: dict[str, Any] = {"ok": True, "stats": (yield bridge.stats())}
                elif req["op"] == "allow":
                    isolate[0] = ()
                    for ev in list(children.values()):
                        yield bridge.move_endpoint(ev.ike_sa, ev.local_ts, ev.remote_ts)
                    reply = {"ok": True}
                elif req["op"] == "rekey":
                    for ev in list(children.values()):
                        engine.rekey_child_sa(ev.ike_sa, ev.spi_in, service.now())
                    service.flush()
                    reply = {"ok": True}
                else:
                    reply = {"ok": False, "error": "unknown op"}
            except Exception as exc:
                reply = {"ok": False, "error": repr(exc)}
            self.transport.write(json.dumps(reply).encode() + b"\n")  # type: ignore[union-attr]

    reactor.listenUNIX(spec["control"], protocol.Factory.forProtocol(Control))
    for port, proto in service.ports.items():
        reactor.listenUDP(port, proto, interface=spec["listen"], maxPacketSize=65535)
    print("IKE listening", flush=True)
    log.info("IKE listening, dataplane %s (%s)", bridge.name, bridge.reason)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
