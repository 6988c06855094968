"""The ports validator: Port Filter (RFC 5792 4.2.6) against allowed or forbidden open
TCP/UDP ports (strongSwan's Scanner IMV; policy types TCPOP, TCPBL, UDPOP, UDPBL).

``TCPOP``/``UDPOP``: only the listed ports may be open. ``TCPBL``/``UDPBL``: the listed
ports must not be open. A Port Filter entry without the B (blocked) flag is an open port.
"""

from __future__ import annotations

from typing import ClassVar

from nea.imv.base import Measured, Need, PolicyValidator, ValidatorConnection
from nea.imv.subtypes import PORTS
from nea.pa import (
    Attribute,
    AttributeRequest,
    IetfAttributeType,
    PortFilter,
    RequestedAttribute,
    Vendor,
)
from nea.policy.config import Policy, PolicyType

__all__ = ["PortsValidator"]

TCP = 6
UDP = 17
_PROTO = {
    PolicyType.TCPOP: TCP, PolicyType.TCPBL: TCP, PolicyType.UDPOP: UDP, PolicyType.UDPBL: UDP,
}
_REQ_PORTS = AttributeRequest(
    (RequestedAttribute(Vendor.IETF, int(IetfAttributeType.PORT_FILTER)),)
)


class PortsValidator(PolicyValidator):
    NAME: ClassVar[str] = "ports"
    TYPES: ClassVar[frozenset[PolicyType]] = frozenset(_PROTO)
    SUBSCRIPTIONS: ClassVar[tuple[tuple[int, int], ...]] = (PORTS,)
    DEFAULT_ID: ClassVar[int] = 2

    def take(self, conn_id: int, st: ValidatorConnection, attr: Attribute) -> None:
        if isinstance(attr, PortFilter):
            entries = tuple((e.protocol, e.port, e.blocked) for e in attr.entries)
            st.data["ports"] = st.data.get("ports", ()) + entries
            self.engine.record_facts(conn_id, ports=st.data["ports"])

    def measure(self, conn_id: int, st: ValidatorConnection, policy: Policy) -> Measured | Need:
        if "ports" not in st.data:
            return Need("ports", _REQ_PORTS, "the endpoint did not send a Port Filter")
        proto = _PROTO[policy.type]
        name = "tcp" if proto == TCP else "udp"
        open_ports = sorted({port for p, port, blocked in st.data["ports"]
                             if p == proto and not blocked})
        if policy.type in (PolicyType.TCPOP, PolicyType.UDPOP):
            bad = [p for p in open_ports if not policy.port_listed(p)]
            why = "not allowed"
        else:
            bad = [p for p in open_ports if policy.port_listed(p)]
            why = "forbidden"
        ev = {"protocol": name, "open": open_ports, "violations": bad}
        if bad:
            ports = ", ".join(f"{name}/{p}" for p in bad)
            return Measured(False, ev, f"open {why} ports: {ports}")
        return Measured(True, ev, f"no {why} open {name} port")
