"""Posture collectors (IMCs): report a :class:`HostFacts` value over PA-TNC.

Build the collectors of an endpoint::

    facts = gateway.endpoint.profile.load_profile("examples/profiles/compliant.toml")
    collectors = build_collectors(facts)          # test, ports, os, swima
    tncc = Tncc(collectors, connection_id=1)
    ...
    report = endpoint_report(tncc.result, collectors, 1)
"""

from nea.imc.collectors import (
    COLLECTOR_NAMES,
    SWID_REGID,
    EndpointReport,
    HostCollector,
    OsCollector,
    PortsCollector,
    ReceivedRemediation,
    SwimaCollector,
    TestCollector,
    build_collectors,
    endpoint_report,
    software_identifier,
)
from nea.imc.host import (
    PRODUCT_VENDOR_IDS,
    TCP,
    UDP,
    HostFacts,
    SoftwareEvent,
    product_vendor_id,
)

__all__ = [
    "COLLECTOR_NAMES",
    "PRODUCT_VENDOR_IDS",
    "SWID_REGID",
    "TCP",
    "UDP",
    "EndpointReport",
    "HostCollector",
    "HostFacts",
    "OsCollector",
    "PortsCollector",
    "ReceivedRemediation",
    "SoftwareEvent",
    "SwimaCollector",
    "TestCollector",
    "build_collectors",
    "endpoint_report",
    "product_vendor_id",
    "software_identifier",
]
