"""SWIMA attributes: RFC 8412 section 5 (IETF types 13-17).

Common record layout (Software [Identifier] Inventory and Events): Record Identifier (32),
Data Model Type PEN (24), Data Model Type (8), Source Identifier Number (8), Reserved (8;
the Action in event records),
Software Identifier Length (16), Software Identifier, Software Locator Length (16),
Software Locator, and for the full SW Inventory / SW Events also Record Length (32), Record.
Counts (24 bits) must match the records exactly and the value must be consumed exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

from nea.pa._wire import Reader, check_rfc3339_20, u8, u24, u32, vec16, vec32
from nea.pa.attribute import Attribute, Vendor, register
from nea.pa.errors import InvalidParameter, LocalPaTncError

__all__ = [
    "SW_REQUEST_CLEAR",
    "SW_REQUEST_RESULT_IDS",
    "SW_REQUEST_SUBSCRIBE",
    "SwEvent",
    "SwEventAction",
    "SwEvents",
    "SwIdentifierEvents",
    "SwIdentifierInventory",
    "SwInventory",
    "SwRecord",
    "SwRequest",
]

#: RFC 8412 SWIMA Request flags (C, S, R).
SW_REQUEST_CLEAR = 0x80
SW_REQUEST_SUBSCRIBE = 0x40
SW_REQUEST_RESULT_IDS = 0x20


class SwEventAction(enum.IntEnum):
    """RFC 8412 (Software [Identifier] Events): Action of an event."""

    CREATION = 1
    DELETION = 2
    ALTERATION = 3


@dataclass(frozen=True)
class SwRecord:
    """A software inventory evidence record (or only its identifier part).

    ``record`` is the full evidence record (SW Inventory / SW Events) or None in the
    identifier-only attributes (SW Identifier Inventory / Events).
    """

    record_id: int
    data_model_pen: int
    data_model_type: int
    source_id: int
    software_identifier: str
    software_locator: str = ""
    record: bytes | None = None
    reserved: int = 0

    @classmethod
    def parse(cls, r: Reader, *, with_record: bool, is_event: bool) -> tuple[Self, int, int]:
        """Returns (record, reserved/action octet, offset of that octet)."""
        record_id = r.u32("record identifier")
        pen = r.u24("data model type PEN")
        dm_type = r.u8("data model type")
        source = r.u8("source identifier number")
        at = r.offset
        octet = r.u8("action" if is_event else "reserved")
        sw_id = r.text16("software identifier")
        locator = r.text16("software locator")
        record = r.vec32("record") if with_record else None
        return (
            cls(record_id, pen, dm_type, source, sw_id, locator, record,
                0 if is_event else octet),
            octet,
            at,
        )

    def serialize(self, *, with_record: bool, octet: int) -> bytes:
        if with_record != (self.record is not None):
            raise LocalPaTncError(
                "full SW attributes need records, identifier-only ones must not have them"
            )
        out = (
            u32(self.record_id, "record identifier")
            + u24(self.data_model_pen, "data model type PEN")
            + u8(self.data_model_type, "data model type")
            + u8(self.source_id, "source identifier number")
            + u8(octet, "reserved/action")
            + vec16(self.software_identifier, "software identifier")
            + vec16(self.software_locator, "software locator")
        )
        if self.record is not None:
            out += vec32(self.record, "record")
        return out


@register
@dataclass(frozen=True)
class SwRequest(Attribute):
    """RFC 8412 SWIMA Request: Flags C/S/R (8), Software Identifier Count (24), Request ID
    (32),
    Earliest EID (32), then length-prefixed (16) target software identifiers."""

    VENDOR = Vendor.IETF
    TYPE = 13
    NAME = "SW Request"

    request_id: int
    earliest_eid: int = 0
    software_identifiers: tuple[str, ...] = ()
    request_flags: int = 0

    @property
    def clear_subscriptions(self) -> bool:
        return bool(self.request_flags & SW_REQUEST_CLEAR)

    @property
    def subscribe(self) -> bool:
        return bool(self.request_flags & SW_REQUEST_SUBSCRIBE)

    @property
    def identifiers_only(self) -> bool:
        """R flag: the response carries software identifiers only, no records."""
        return bool(self.request_flags & SW_REQUEST_RESULT_IDS)

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        req_flags = reader.u8("request flags")
        count = reader.u24("software identifier count")
        request_id = reader.u32("request ID")
        earliest = reader.u32("earliest EID")
        ids = tuple(reader.text16("software identifier") for _ in range(count))
        reader.expect_end(f"{count} software identifiers")
        return cls(request_id, earliest, ids, req_flags, flags=flags)

    def serialize_value(self) -> bytes:
        return (
            u8(self.request_flags, "request flags")
            + u24(len(self.software_identifiers), "software identifier count")
            + u32(self.request_id, "request ID")
            + u32(self.earliest_eid, "earliest EID")
            + b"".join(vec16(s, "software identifier") for s in self.software_identifiers)
        )


@dataclass(frozen=True)
class _Inventory(Attribute):
    """RFC 8412 Software [Identifier] Inventory: Flags (8), Count (24), Request ID Copy /
    Subscription ID (32), EID Epoch (32), Last EID (32), records."""

    WITH_RECORD: ClassVar[bool] = False

    request_id: int
    eid_epoch: int
    last_eid: int
    records: tuple[SwRecord, ...] = ()
    inventory_flags: int = 0

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        inv_flags = reader.u8("flags")
        count = reader.u24("record count")
        request_id = reader.u32("request ID")
        epoch = reader.u32("EID epoch")
        last = reader.u32("last EID")
        records = []
        for _ in range(count):
            rec, _octet, _at = SwRecord.parse(reader, with_record=cls.WITH_RECORD,
                                              is_event=False)
            records.append(rec)
        reader.expect_end(f"{count} records")
        return cls(request_id, epoch, last, tuple(records), inv_flags, flags=flags)

    def serialize_value(self) -> bytes:
        return (
            u8(self.inventory_flags, "flags")
            + u24(len(self.records), "record count")
            + u32(self.request_id, "request ID")
            + u32(self.eid_epoch, "EID epoch")
            + u32(self.last_eid, "last EID")
            + b"".join(r.serialize(with_record=self.WITH_RECORD, octet=r.reserved)
                       for r in self.records)
        )


@register
@dataclass(frozen=True)
class SwIdentifierInventory(_Inventory):
    """RFC 8412 Software Identifier Inventory (records without the record data)."""

    VENDOR = Vendor.IETF
    TYPE = 14
    NAME = "SW Identifier Inventory"
    WITH_RECORD = False


@register
@dataclass(frozen=True)
class SwInventory(_Inventory):
    """RFC 8412 Software Inventory (records with their record data)."""

    VENDOR = Vendor.IETF
    TYPE = 16
    NAME = "SW Inventory"
    WITH_RECORD = True


@dataclass(frozen=True)
class SwEvent:
    """RFC 8412 event sub-block: EID (32), Timestamp (20-octet RFC 3339), then a record whose
    Reserved octet is the Action."""

    eid: int
    timestamp: str
    action: int
    record: SwRecord


@dataclass(frozen=True)
class _Events(Attribute):
    """RFC 8412 Software [Identifier] Events: Flags (8), Count (24), Request ID Copy /
    Subscription ID (32), EID Epoch (32), Last EID (32), Last Consulted EID (32), events."""

    WITH_RECORD: ClassVar[bool] = False

    request_id: int
    eid_epoch: int
    last_eid: int
    last_consulted_eid: int
    events: tuple[SwEvent, ...] = ()
    event_flags: int = 0

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        ev_flags = reader.u8("flags")
        count = reader.u24("event count")
        request_id = reader.u32("request ID")
        epoch = reader.u32("EID epoch")
        last = reader.u32("last EID")
        consulted = reader.u32("last consulted EID")
        events = []
        for _ in range(count):
            eid = reader.u32("EID")
            at = reader.offset
            stamp = check_rfc3339_20(reader.take(20, "timestamp"), "timestamp", at)
            rec, action, action_at = SwRecord.parse(
                reader, with_record=cls.WITH_RECORD, is_event=True
            )
            if action not in SwEventAction._value2member_map_:
                raise InvalidParameter(f"invalid software event action {action}",
                                       offset=action_at)
            events.append(SwEvent(eid, stamp, action, rec))
        reader.expect_end(f"{count} events")
        return cls(request_id, epoch, last, consulted, tuple(events), ev_flags, flags=flags)

    def serialize_value(self) -> bytes:
        out = bytearray(
            u8(self.event_flags, "flags")
            + u24(len(self.events), "event count")
            + u32(self.request_id, "request ID")
            + u32(self.eid_epoch, "EID epoch")
            + u32(self.last_eid, "last EID")
            + u32(self.last_consulted_eid, "last consulted EID")
        )
        for ev in self.events:
            stamp = ev.timestamp.encode("ascii", "replace")
            try:
                check_rfc3339_20(stamp, "timestamp", 0)
            except InvalidParameter as exc:
                raise LocalPaTncError(f"timestamp {ev.timestamp!r}: {exc}") from None
            out += u32(ev.eid, "EID") + stamp
            out += ev.record.serialize(with_record=self.WITH_RECORD, octet=ev.action)
        return bytes(out)


@register
@dataclass(frozen=True)
class SwIdentifierEvents(_Events):
    """RFC 8412 Software Identifier Events."""

    VENDOR = Vendor.IETF
    TYPE = 15
    NAME = "SW Identifier Events"
    WITH_RECORD = False


@register
@dataclass(frozen=True)
class SwEvents(_Events):
    """RFC 8412, 5.10: Software Events."""

    VENDOR = Vendor.IETF
    TYPE = 17
    NAME = "SW Events"
    WITH_RECORD = True
