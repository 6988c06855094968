"""The collectors: what they send unasked, how they answer requests, what they record."""

from __future__ import annotations

import datetime as dt

import pytest

from nea.imc import (
    HostFacts,
    OsCollector,
    PortsCollector,
    SoftwareEvent,
    SwimaCollector,
    TestCollector,
    build_collectors,
    software_identifier,
)
from nea.imc.collectors import PACKAGES_PER_ATTRIBUTE, HostCollector
from nea.pa import (
    FLAG_NOSKIP,
    NO_LIMIT,
    AttributeEnvelope,
    AttributeRequest,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    InstalledPackages,
    ItaCommand,
    ItaDeviceId,
    MaxAttributeSizeRequest,
    MaxAttributeSizeResponse,
    NeedNextSegment,
    NextSegment,
    NumericVersion,
    OperationalStatus,
    PaErrorCode,
    PaMessage,
    PaTncErrorAttribute,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    Reassembled,
    RequestedAttribute,
    SegmentReassembler,
    StringVersion,
    SwIdentifierEvents,
    SwIdentifierInventory,
    SwRequest,
    Vendor,
)
from nea.pb_tnc import ConnectionState, OutboundPa, PbPa

UBUNTU = HostFacts(
    os_id="ubuntu", os_name="Ubuntu", os_version="22.04", arch="aarch64",
    packages=(("openssl", "3.0.2-0ubuntu1.18"), ("bash", "5.1-6ubuntu1")),
    forwarding=0, default_password=None, listening=((6, 22), (17, 68)), blocked=((6, 23),),
    device_id="feedface", last_boot=dt.datetime(2026, 11, 1, 8, 30, tzinfo=dt.UTC),
    test_command="retry", retry_command="allow",
)


def start(c: HostCollector, conn: int = 1) -> list[OutboundPa]:
    c.notify_connection_change(conn, ConnectionState.CREATE)
    c.notify_connection_change(conn, ConnectionState.HANDSHAKE)
    return list(c.begin_handshake(conn))


def to_collector(c: HostCollector, *attrs: object, validator_id: int = 9) -> list[OutboundPa]:
    vendor, subtype = c.MESSAGE_TYPE
    body = PaMessage.create(attrs).serialize()  # type: ignore[arg-type]
    return list(c.receive_message(1, PbPa(vendor, subtype, 0xFFFF, validator_id, body)))


def test_os_collector_initial_attributes() -> None:
    [out] = start(OsCollector(UBUNTU))
    assert (out.vendor_id, out.subtype, out.peer_id, out.exclusive) == (0, 1, 0xFFFF, False)
    attrs = PaMessage.parse(out.body).attributes
    assert attrs == (
        ProductInformation(28978, 0, "Ubuntu"),
        StringVersion("22.04 aarch64"),
        NumericVersion(22, 4),
        OperationalStatus(3, 1, "2026-11-01T08:30:00Z"),
        ForwardingEnabled(0),
        ItaDeviceId("feedface"),  # no Factory Default Password: unknown
    )


@pytest.mark.parametrize(("os_id", "pen"), [("debian", 9586), ("fedora", 30401),
                                             ("rhel", 2312), ("arch", 0)])
def test_product_vendor_ids(os_id: str, pen: int) -> None:
    [out] = start(OsCollector(HostFacts(os_id=os_id, default_password=True)))
    msg = PaMessage.parse(out.body)
    info = msg.first(ProductInformation)
    assert info is not None and info.product_vendor_id == pen
    assert msg.first(FactoryDefaultPasswordEnabled) == FactoryDefaultPasswordEnabled(1)
    assert msg.first(ItaDeviceId) is None


def test_os_collector_answers_attribute_requests() -> None:
    many = tuple((f"p{i}", "1") for i in range(PACKAGES_PER_ATTRIBUTE * 2 + 1))
    c = OsCollector(HostFacts(os_id="debian", packages=many, device_id="d"))
    start(c)
    req = AttributeRequest((RequestedAttribute(Vendor.IETF, 7),
                            RequestedAttribute(Vendor.ITA, 8),
                            RequestedAttribute(Vendor.IETF, 11),
                            RequestedAttribute(0x123456, 1)))
    out = to_collector(c, req, validator_id=3)
    assert all(o.peer_id == 3 and o.exclusive for o in out)
    msgs = [PaMessage.parse(o.body) for o in out]
    # small attributes together, each Installed Packages alone (fits a PT-EAP PB message)
    assert [type(a) for a in msgs[0].attributes] == [ItaDeviceId, ForwardingEnabled]
    chunks = [m.attributes[0] for m in msgs[1:]]
    assert all(isinstance(a, InstalledPackages) for a in chunks)
    assert [len(a.packages) for a in chunks if isinstance(a, InstalledPackages)] == [
        PACKAGES_PER_ATTRIBUTE, PACKAGES_PER_ATTRIBUTE, 1]
    assert max(len(o.body) for o in out) < 32722


def test_ports_collector() -> None:
    [out] = start(PortsCollector(UBUNTU))
    assert (out.vendor_id, out.subtype) == (0, 5)
    pf = PaMessage.parse(out.body).first(PortFilter)
    assert pf is not None and pf.noskip
    assert pf.entries == (PortFilterEntry(False, 6, 22), PortFilterEntry(False, 17, 68),
                          PortFilterEntry(True, 6, 23))
    [again] = to_collector(PortsCollector(UBUNTU),
                           AttributeRequest((RequestedAttribute(0, 6),)), validator_id=2)
    assert PaMessage.parse(again.body).first(PortFilter) == pf


def test_test_collector_uses_retry_command_on_retry() -> None:
    c = TestCollector(UBUNTU)
    [out] = start(c)
    assert (out.vendor_id, out.subtype) == (0x902A, 1)
    assert PaMessage.parse(out.body).attributes == (ItaCommand("retry", flags=FLAG_NOSKIP),)
    c.notify_connection_change(1, ConnectionState.HANDSHAKE)
    [out] = c.begin_handshake(1)
    assert PaMessage.parse(out.body).attributes == (ItaCommand("allow", flags=FLAG_NOSKIP),)
    assert start(TestCollector(HostFacts()), 2) == []


def test_swima_collector_inventory_and_events() -> None:
    ev = SoftwareEvent(4, "2026-11-20T10:00:00Z", 2, "telnet", "0.17")
    facts = HostFacts(os_id="debian", packages=(("zsh", "5.9"), ("bash", "5.2")),
                      swima_epoch=77, software_events=(ev,))
    c = SwimaCollector(facts)
    assert start(c) == []  # nothing unasked
    [out] = to_collector(c, SwRequest(5, 0, (), 0x20), validator_id=4)
    inv = PaMessage.parse(out.body).first(SwIdentifierInventory)
    assert inv is not None and (inv.request_id, inv.eid_epoch, inv.last_eid) == (5, 77, 4)
    assert [r.software_identifier for r in inv.records] == [
        software_identifier("debian", "bash", "5.2"), software_identifier("debian", "zsh", "5.9")]
    [out] = to_collector(c, SwRequest(6, 3, (), 0x20), validator_id=4)
    evs = PaMessage.parse(out.body).first(SwIdentifierEvents)
    assert evs is not None and [(e.eid, e.action) for e in evs.events] == [(4, 2)]
    [out] = to_collector(c, SwRequest(7, 5, (), 0x20), validator_id=4)
    evs = PaMessage.parse(out.body).first(SwIdentifierEvents)
    assert evs is not None and evs.events == ()


def test_malformed_message_answered_with_pa_error() -> None:
    c = OsCollector(UBUNTU)
    start(c)
    bad = PbPa(0, 1, 0xFFFF, 3, b"\x01\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00")
    [out] = c.receive_message(1, bad)
    assert out.peer_id == 3 and out.exclusive
    [err] = PaMessage.parse(out.body).find(PaTncErrorAttribute)
    assert err.error_code == PaErrorCode.INVALID_PARAMETER
    # an error from the validator is recorded, not answered
    assert to_collector(c, err, validator_id=3) == []
    assert [e.error_code for e in c.errors(1)] == [PaErrorCode.INVALID_PARAMETER]


def test_build_collectors() -> None:
    cs = build_collectors(UBUNTU)
    assert [(c.NAME, c.collector_id) for c in cs] == [("test", 1), ("ports", 2), ("os", 3),
                                                      ("swima", 4)]
    with pytest.raises(ValueError, match="unknown collector 'av'"):
        build_collectors(UBUNTU, ["os", "av"])


def test_segmentation_contract_answered() -> None:
    c = OsCollector(UBUNTU)
    start(c)
    [out] = to_collector(c, MaxAttributeSizeRequest(4 << 20, 32000), validator_id=3)
    assert PaMessage.parse(out.body).attributes == (MaxAttributeSizeResponse(NO_LIMIT, NO_LIMIT),)


def test_large_packages_segmented_under_contract() -> None:
    many = tuple((f"package-{i:05d}", f"1.{i}-1") for i in range(3000))
    c = OsCollector(HostFacts(os_id="debian", packages=many))
    start(c)
    req = AttributeRequest((RequestedAttribute(Vendor.IETF, 7),))
    out = to_collector(c, MaxAttributeSizeRequest(1 << 22, 20000), req, validator_id=3)
    assert PaMessage.parse(out[0].body).attributes == (
        MaxAttributeSizeResponse(NO_LIMIT, NO_LIMIT),)
    [first] = PaMessage.parse(out[1].body).attributes
    assert isinstance(first, AttributeEnvelope) and first.start and first.more
    reassembler = SegmentReassembler(max_attribute_size=1 << 22)
    event = reassembler.receive(first)
    rounds = 0
    while isinstance(event, NeedNextSegment):
        [reply] = to_collector(c, event.request, validator_id=3)
        [env] = PaMessage.parse(reply.body).attributes
        assert isinstance(env, AttributeEnvelope) and len(env.segment) <= 20000
        event = reassembler.receive(env)
        rounds += 1
    assert isinstance(event, Reassembled)
    size = len(event.attribute.serialize())
    assert size > 60000 and rounds == -(-size // 20000) - 1  # one Next Segment per segment
    assert isinstance(event.attribute, InstalledPackages)
    assert len(event.attribute.packages) == 3000  # one attribute: the list is complete
    # a Next Segment for nothing in flight: a segmentation error
    [err_msg] = to_collector(c, NextSegment(999), validator_id=3)
    [err] = PaMessage.parse(err_msg.body).find(PaTncErrorAttribute)
    assert err.error_code == PaErrorCode.INVALID_PARAMETER
