"""Posture collectors (IMCs) that report a :class:`~nea.imc.host.HostFacts` value.

Each collector sends its attributes unasked at the start of every handshake (as strongSwan's
collectors do), answers Attribute Requests for the attributes it knows, and records what
validators send back -- Assessment Results, Remediation Instructions and PA-TNC Errors -- for
display (:func:`endpoint_report`). A PA message that warrants a PA-TNC Error is answered
with one (:func:`nea.pa.process_message`) and otherwise ignored.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from nea.imc.host import HostFacts, product_vendor_id
from nea.imv.subtypes import ITA_TEST, OS, PORTS, SWIMA
from nea.pa import (
    ATTRIBUTE_HEADER_LEN,
    FLAG_NOSKIP,
    NO_LIMIT,
    AssessmentResult,
    Attribute,
    AttributeEnvelope,
    AttributeRequest,
    AttributeSegmenter,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    IetfAttributeType,
    InstalledPackages,
    ItaAttributeType,
    ItaCommand,
    ItaDeviceId,
    LocalPaTncError,
    MaxAttributeSizeRequest,
    MaxAttributeSizeResponse,
    NextSegment,
    NumericVersion,
    OperationalResult,
    OperationalStatus,
    OperationalStatusCode,
    Package,
    PaMessage,
    PaTncErrorAttribute,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    RemediationInstructions,
    RemediationString,
    RemediationUri,
    SegmentationError,
    StringVersion,
    SwEvent,
    SwIdentifierEvents,
    SwIdentifierInventory,
    SwRecord,
    SwRequest,
    Vendor,
    error_message,
    needs_segmentation,
    process_message,
)
from nea.pa.ietf import UNKNOWN_LAST_USE
from nea.pb_tnc.engine import ResultReceived
from nea.pb_tnc.imv import ConnectionState, OutboundPa
from nea.pb_tnc.messages import PID_ANY, AccessRecommendation, PbPa
from nea.pb_tnc.messages import AssessmentResult as PbAssessmentResult

__all__ = [
    "COLLECTOR_NAMES",
    "SWID_REGID",
    "EndpointReport",
    "HostCollector",
    "OsCollector",
    "PortsCollector",
    "ReceivedRemediation",
    "SwimaCollector",
    "TestCollector",
    "build_collectors",
    "endpoint_report",
    "software_identifier",
]

SWID_REGID = "regid.2026-11.org.nea-gateway"
"""Tag creator of the software identifiers the SWIMA collector makes up from packages."""

PACKAGES_PER_ATTRIBUTE = 500
"""Without a segmentation contract (a validator that did not send a TCG Max Attribute Size
Request), a large Installed Packages is split over several attributes (and PA messages) of
at most this many packages, so that each fits a PB-TNC message even inside PT-EAP (32722
octets). With a contract it is sent as one attribute, in segments when it is larger than
the validator's maximum segment size."""
MAX_PACKAGES = 0xFFFF
"""Installed Packages counts packages in 16 bits."""


def software_identifier(os_id: str, name: str, version: str) -> str:
    """``regid.2026-11.org.nea-gateway__debian-openssl-3.0.15-1~deb12u1``."""
    return f"{SWID_REGID}__{os_id}-{name}-{version}"


@dataclass(frozen=True)
class ReceivedRemediation:
    collector: str
    validator_id: int
    uri: str | None = None
    text: str | None = None
    language: str = ""


@dataclass
class _Conn:
    handshakes: int = 0
    assessments: list[tuple[int, int]] | None = None
    remediation: list[ReceivedRemediation] | None = None
    errors: list[PaTncErrorAttribute] | None = None
    contracts: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Segmentation contracts by validator id: (max attribute size, max segment size)."""
    segmenters: dict[int, AttributeSegmenter] = field(default_factory=dict)
    next_base_id: int = 1

    def reset(self) -> None:
        self.assessments, self.remediation, self.errors = [], [], []
        self.contracts.clear()
        self.segmenters.clear()


class HostCollector:
    """Base: subclasses set NAME / MESSAGE_TYPE / DEFAULT_ID and implement ``initial``,
    ``answer`` (Attribute Request) and optionally ``handle`` (other attributes)."""

    NAME: ClassVar[str] = "collector"
    MESSAGE_TYPE: ClassVar[tuple[int, int]] = (0, 0)
    DEFAULT_ID: ClassVar[int] = 0

    def __init__(self, facts: HostFacts, *, collector_id: int | None = None) -> None:
        self.facts = facts
        """What the collector reports; may be replaced between handshakes."""
        self._id = self.DEFAULT_ID if collector_id is None else collector_id
        self._conns: dict[int, _Conn] = {}

    # ---- PostureCollector protocol

    @property
    def collector_id(self) -> int:
        return self._id

    @property
    def subscriptions(self) -> Collection[tuple[int, int]]:
        return (self.MESSAGE_TYPE,)

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None:
        conn = self._conn(conn_id)
        if state is ConnectionState.HANDSHAKE:
            conn.handshakes += 1
            conn.reset()

    def begin_handshake(self, conn_id: int) -> Sequence[OutboundPa]:
        conn = self._conn(conn_id)
        return self._send(self.initial(conn_id, conn.handshakes), PID_ANY, conn)

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]:
        conn = self._conn(conn_id)
        result = process_message(message.body)
        if result.decoded is not None:
            assert conn.errors is not None
            conn.errors.extend(result.decoded.find(PaTncErrorAttribute))
        if not result.ok:
            reply = error_message(result.errors)
            return [self._outbound(reply, message.validator_id)]
        msg = result.message
        assert msg is not None
        replies: list[Attribute] = []
        for attr in msg.attributes:
            if isinstance(attr, AttributeRequest):
                for req in attr.requested:
                    replies.extend(self.answer(req.vendor_id, req.attr_type))
            elif isinstance(attr, AssessmentResult):
                assert conn.assessments is not None
                conn.assessments.append((message.validator_id, attr.result))
            elif isinstance(attr, RemediationInstructions):
                assert conn.remediation is not None
                conn.remediation.append(self._remediation(message.validator_id, attr))
            elif isinstance(attr, MaxAttributeSizeRequest):
                # TCG segmentation contract: the validator's limits for what we send; ours
                # for what we receive: any size, no segments needed
                conn.contracts[message.validator_id] = (attr.max_attribute_size,
                                                        attr.max_segment_size)
                replies.append(MaxAttributeSizeResponse(NO_LIMIT, NO_LIMIT))
            elif isinstance(attr, NextSegment):
                replies.extend(self._next_segment(conn, attr))
            else:
                replies.extend(self.handle(conn_id, attr))
        return self._send(replies, message.validator_id, conn)

    @staticmethod
    def _next_segment(conn: _Conn, request: NextSegment) -> list[Attribute]:
        seg = conn.segmenters.get(request.base_attr_id)
        if seg is None:
            err = SegmentationError(
                f"no segmented attribute with base ID {request.base_attr_id}", offset=0,
                header=b"\xff\xff\xff\xff" + request.base_attr_id.to_bytes(4, "big"))
            return [err.to_attribute()]
        envelope = seg.handle_next_segment(request)
        if seg.done:
            del conn.segmenters[request.base_attr_id]
        return [envelope] if envelope is not None else []

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]:
        return []

    # ---- for subclasses

    def initial(self, conn_id: int, handshake: int) -> list[Attribute]:
        return []

    def answer(self, vendor_id: int, attr_type: int) -> list[Attribute]:
        return []

    def handle(self, conn_id: int, attr: Attribute) -> list[Attribute]:
        return []

    # ---- records for display

    def assessments(self, conn_id: int) -> list[tuple[int, int]]:
        """(validator id, Assessment Result value) received in the last handshake."""
        return list(self._conn(conn_id).assessments or [])

    def remediation(self, conn_id: int) -> list[ReceivedRemediation]:
        return list(self._conn(conn_id).remediation or [])

    def errors(self, conn_id: int) -> list[PaTncErrorAttribute]:
        return list(self._conn(conn_id).errors or [])

    # ---- machinery

    def _conn(self, conn_id: int) -> _Conn:
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = self._conns[conn_id] = _Conn()
            conn.reset()
        return conn

    def _remediation(self, validator_id: int, attr: RemediationInstructions) -> ReceivedRemediation:
        p = attr.parameters
        if isinstance(p, RemediationUri):
            return ReceivedRemediation(self.NAME, validator_id, uri=p.uri)
        if isinstance(p, RemediationString):
            return ReceivedRemediation(self.NAME, validator_id, text=p.text, language=p.lang)
        return ReceivedRemediation(
            self.NAME, validator_id,
            text=f"vendor {attr.param_vendor_id:#x} remediation type {attr.param_type}",
        )

    def _outbound(self, message: PaMessage, validator_id: int) -> OutboundPa:
        vendor, subtype = self.MESSAGE_TYPE
        return OutboundPa(vendor, subtype, message.serialize(), peer_id=validator_id,
                          exclusive=validator_id != PID_ANY)

    def _send(self, attrs: list[Attribute], validator_id: int, conn: _Conn) -> list[OutboundPa]:
        """One PA message; a large attribute travels alone: in TCG segments when the
        validator made a segmentation contract, else (Installed Packages) split up."""
        small: list[Attribute] = []
        alone: list[Attribute] = []
        contract = conn.contracts.get(validator_id)
        for attr in attrs:
            if isinstance(attr, InstalledPackages):
                pkgs = attr.packages
                per = MAX_PACKAGES if contract is not None else PACKAGES_PER_ATTRIBUTE
                parts = [InstalledPackages(pkgs[i:i + per]) for i in range(0, len(pkgs), per)]
                alone += parts or [attr]
            elif isinstance(attr, AttributeEnvelope):
                alone.append(attr)
            elif contract is not None and _too_big(attr, contract):
                alone.append(attr)  # e.g. a large SWIMA inventory
            else:
                small.append(attr)
        if contract is not None:
            alone = [a if isinstance(a, AttributeEnvelope) else
                     self._maybe_segment(conn, a, contract) for a in alone]
        out = []
        if small:
            out.append(self._outbound(PaMessage.create(small), validator_id))
        out.extend(self._outbound(PaMessage.create([a]), validator_id) for a in alone)
        return out

    @staticmethod
    def _maybe_segment(conn: _Conn, attr: Attribute, contract: tuple[int, int]) -> Attribute:
        max_attr, max_seg = contract
        try:
            segment = needs_segmentation(attr, max_attribute_size=max_attr,
                                         max_segment_size=max_seg)
        except LocalPaTncError:
            segment = False  # larger than the validator accepts: send it whole anyway
        if not segment or max_seg < ATTRIBUTE_HEADER_LEN:
            return attr
        base_id = conn.next_base_id
        conn.next_base_id = base_id % 0xFFFFFF + 1
        seg = AttributeSegmenter(attr, base_id, max_seg)
        conn.segmenters[base_id] = seg
        return seg.first_segment()


def _too_big(attr: Attribute, contract: tuple[int, int]) -> bool:
    try:
        return needs_segmentation(attr, max_attribute_size=contract[0],
                                  max_segment_size=contract[1])
    except LocalPaTncError:
        return False


def _last_use(at: _dt.datetime | None) -> str:
    if at is None:
        return UNKNOWN_LAST_USE
    return at.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OsCollector(HostCollector):
    """Product Information, String/Numeric Version, Operational Status, Forwarding Enabled,
    Factory Default Password Enabled, ITA Device ID; Installed Packages when asked."""

    NAME: ClassVar[str] = "os"
    MESSAGE_TYPE: ClassVar[tuple[int, int]] = OS
    DEFAULT_ID: ClassVar[int] = 3

    def _product(self) -> list[Attribute]:
        f = self.facts
        return [ProductInformation(product_vendor_id(f.os_id), 0, f.os_name)]

    def _one(self, attr_type: int) -> list[Attribute]:
        f = self.facts
        t = IetfAttributeType
        if attr_type == t.PRODUCT_INFORMATION:
            return self._product()
        if attr_type == t.STRING_VERSION:
            return [StringVersion(f.string_version)]
        if attr_type == t.NUMERIC_VERSION:
            major, minor = f.numeric_version
            return [NumericVersion(major, minor)]
        if attr_type == t.OPERATIONAL_STATUS:
            return [OperationalStatus(OperationalStatusCode.OPERATIONAL,
                                      OperationalResult.SUCCESSFUL, _last_use(f.last_boot))]
        if attr_type == t.FORWARDING_ENABLED:
            return [ForwardingEnabled(int(f.forwarding))]
        if attr_type == t.FACTORY_DEFAULT_PASSWORD_ENABLED:
            if f.default_password is None:
                return []
            return [FactoryDefaultPasswordEnabled(int(f.default_password))]
        if attr_type == t.INSTALLED_PACKAGES:
            return [InstalledPackages(tuple(Package(n, v) for n, v in f.packages))]
        return []

    def initial(self, conn_id: int, handshake: int) -> list[Attribute]:
        t = IetfAttributeType
        out: list[Attribute] = []
        for attr_type in (t.PRODUCT_INFORMATION, t.STRING_VERSION, t.NUMERIC_VERSION,
                          t.OPERATIONAL_STATUS, t.FORWARDING_ENABLED,
                          t.FACTORY_DEFAULT_PASSWORD_ENABLED):
            out.extend(self._one(attr_type))
        if self.facts.device_id:
            out.append(ItaDeviceId(self.facts.device_id))
        return out

    def answer(self, vendor_id: int, attr_type: int) -> list[Attribute]:
        if vendor_id == Vendor.IETF:
            return self._one(attr_type)
        if vendor_id == Vendor.ITA and attr_type == ItaAttributeType.DEVICE_ID:
            return [ItaDeviceId(self.facts.device_id)] if self.facts.device_id else []
        return []


class PortsCollector(HostCollector):
    """Port Filter: listening ports as open, firewalled ones as blocked."""

    NAME: ClassVar[str] = "ports"
    MESSAGE_TYPE: ClassVar[tuple[int, int]] = PORTS
    DEFAULT_ID: ClassVar[int] = 2

    def _filter(self) -> PortFilter:
        entries = [PortFilterEntry(False, proto, port)
                   for proto, port in sorted(set(self.facts.listening))]
        entries += [PortFilterEntry(True, proto, port)
                    for proto, port in sorted(set(self.facts.blocked))]
        return PortFilter(tuple(entries), flags=FLAG_NOSKIP)

    def initial(self, conn_id: int, handshake: int) -> list[Attribute]:
        return [self._filter()]

    def answer(self, vendor_id: int, attr_type: int) -> list[Attribute]:
        if (vendor_id, attr_type) == (Vendor.IETF, IetfAttributeType.PORT_FILTER):
            return [self._filter()]
        return []


class TestCollector(HostCollector):
    """Sends the ITA Command of the facts (``retry_command`` on a retried handshake)."""

    __test__ = False  # not a pytest test class

    NAME: ClassVar[str] = "test"
    MESSAGE_TYPE: ClassVar[tuple[int, int]] = ITA_TEST
    DEFAULT_ID: ClassVar[int] = 1

    def initial(self, conn_id: int, handshake: int) -> list[Attribute]:
        f = self.facts
        command = f.retry_command if handshake > 1 and f.retry_command else f.test_command
        return [ItaCommand(command, flags=FLAG_NOSKIP)] if command else []


class SwimaCollector(HostCollector):
    """Answers SW Requests with software identifiers made up from the installed packages:
    the inventory for earliest EID 0, else the events since that EID."""

    NAME: ClassVar[str] = "swima"
    MESSAGE_TYPE: ClassVar[tuple[int, int]] = SWIMA
    DEFAULT_ID: ClassVar[int] = 4

    def _record(self, record_id: int, name: str, version: str) -> SwRecord:
        ident = software_identifier(self.facts.os_id, name, version)
        return SwRecord(record_id, 0, 0, 0, ident)

    def handle(self, conn_id: int, attr: Attribute) -> list[Attribute]:
        if not isinstance(attr, SwRequest):
            return []
        f = self.facts
        if attr.earliest_eid == 0:
            records = tuple(
                self._record(i, n, v) for i, (n, v) in enumerate(sorted(f.packages), 1)
            )
            return [SwIdentifierInventory(attr.request_id, f.swima_epoch, f.last_eid, records)]
        events = tuple(
            SwEvent(e.eid, e.timestamp, e.action, self._record(e.eid, e.name, e.version))
            for e in f.software_events if e.eid >= attr.earliest_eid
        )
        return [SwIdentifierEvents(attr.request_id, f.swima_epoch, f.last_eid, f.last_eid,
                                   events)]


COLLECTOR_NAMES = ("test", "ports", "os", "swima")


def build_collectors(
    facts: HostFacts, names: Sequence[str] = COLLECTOR_NAMES
) -> list[HostCollector]:
    """One collector per name, all reporting ``facts``; hand the list to a ``Tncc``."""
    classes: dict[str, type[HostCollector]] = {
        "test": TestCollector, "ports": PortsCollector, "os": OsCollector,
        "swima": SwimaCollector,
    }
    out = []
    for name in names:
        if name not in classes:
            raise ValueError(f"unknown collector {name!r} (one of {', '.join(COLLECTOR_NAMES)})")
        out.append(classes[name](facts))
    return out


@dataclass(frozen=True)
class EndpointReport:
    """What the endpoint learnt from an assessment, for display (nea-endpoint)."""

    access: AccessRecommendation | None
    evaluation: PbAssessmentResult | None
    reasons: tuple[tuple[str, str], ...]
    """(language, text) of each PB-Reason-String."""
    remediation: tuple[ReceivedRemediation, ...]
    """Remediation Instructions from PA messages, then PB-Remediation-Parameters
    (collector ``"broker"``, validator id 0)."""
    assessments: tuple[tuple[str, int, int], ...]
    """(collector, validator id, Assessment Result value) from PA messages."""


def endpoint_report(
    result: ResultReceived | None, collectors: Sequence[HostCollector], conn_id: int
) -> EndpointReport:
    remediation = [r for c in collectors for r in c.remediation(conn_id)]
    if result is not None:
        for param in result.remediation:
            uri = param.as_uri
            text = param.as_string
            if uri is not None:
                remediation.append(ReceivedRemediation("broker", 0, uri=uri))
            elif text is not None:
                remediation.append(ReceivedRemediation("broker", 0, text=text[0],
                                                       language=text[1]))
    return EndpointReport(
        result.recommendation if result else None,
        result.evaluation if result else None,
        tuple((r.language, r.reason) for r in result.reasons) if result else (),
        tuple(remediation),
        tuple((c.NAME, vid, value) for c in collectors for vid, value in c.assessments(conn_id)),
    )
