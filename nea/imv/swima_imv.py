"""The SWIMA validator (RFC 8412): software inventory and events, kept per device in a
:class:`SwimaStore` the gateway supplies, and rules on required and forbidden software.

Per handshake the validator asks for software identifiers only (SW Request with the R flag):
the full inventory (earliest EID 0) for a device it has not seen, else the events since the
last EID it stored; events of another EID epoch (the collector's event log was reset) make it
ask for the full inventory. Policy types: SWIDT (inventory collected), SWREQ (software
matching each glob installed), SWFRB (no software matching the globs).
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from nea.imv.base import (
    MAX_ATTRIBUTE_SIZE,
    MAX_SEGMENT_SIZE,
    Measured,
    Need,
    PolicyValidator,
    ValidatorConnection,
)
from nea.imv.engine import PolicyEngine
from nea.imv.subtypes import SWIMA
from nea.pa import (
    Attribute,
    MaxAttributeSizeRequest,
    SwEventAction,
    SwIdentifierEvents,
    SwIdentifierInventory,
    SwRequest,
)
from nea.pa.swima import SW_REQUEST_RESULT_IDS
from nea.policy.config import Policy, PolicyType

__all__ = ["MemorySwimaStore", "SwimaState", "SwimaStore", "SwimaValidator"]

_EVIDENCE_LIMIT = 200
_SEGMENTATION = MaxAttributeSizeRequest(MAX_ATTRIBUTE_SIZE, MAX_SEGMENT_SIZE)


@dataclass(frozen=True)
class SwimaState:
    """A device's software inventory as last synchronised."""

    eid_epoch: int
    last_eid: int
    software: frozenset[str]


@runtime_checkable
class SwimaStore(Protocol):
    """Where the SWIMA validator keeps each device's inventory (the gateway's database)."""

    def get(self, device_id: str) -> SwimaState | None: ...

    def put(self, device_id: str, state: SwimaState) -> None: ...


class MemorySwimaStore:
    """A dict of device id -> :class:`SwimaState` (tests, demos)."""

    def __init__(self) -> None:
        self.devices: dict[str, SwimaState] = {}

    def get(self, device_id: str) -> SwimaState | None:
        return self.devices.get(device_id)

    def put(self, device_id: str, state: SwimaState) -> None:
        self.devices[device_id] = state


class SwimaValidator(PolicyValidator):
    NAME: ClassVar[str] = "swima"
    TYPES: ClassVar[frozenset[PolicyType]] = frozenset(
        {PolicyType.SWIDT, PolicyType.SWREQ, PolicyType.SWFRB}
    )
    SUBSCRIPTIONS: ClassVar[tuple[tuple[int, int], ...]] = (SWIMA,)
    DEFAULT_ID: ClassVar[int] = 4

    def __init__(
        self,
        engine: PolicyEngine,
        store: SwimaStore | None = None,
        *,
        validator_id: int | None = None,
    ) -> None:
        super().__init__(engine, validator_id=validator_id)
        self.store: SwimaStore = store if store is not None else MemorySwimaStore()
        self._request_ids = itertools.count(1)

    def take(self, conn_id: int, st: ValidatorConnection, attr: Attribute) -> None:
        if isinstance(attr, SwIdentifierInventory):
            st.data["full"] = attr
        elif isinstance(attr, SwIdentifierEvents):
            st.data["events"] = attr

    def _request(self, earliest_eid: int) -> SwRequest:
        return SwRequest(next(self._request_ids), earliest_eid, (), SW_REQUEST_RESULT_IDS)

    def _need(self, key: str, earliest_eid: int, reason: str) -> Need:
        # with the segmentation contract a large inventory may come in TCG segments
        return Need(key, self._request(earliest_eid), reason, (_SEGMENTATION,))

    def _inventory(self, conn_id: int, st: ValidatorConnection) -> frozenset[str] | Need:
        have: frozenset[str] | None = st.data.get("inventory")
        if have is not None:
            return have
        device = self.engine.facts(conn_id).device_id
        full: SwIdentifierInventory | None = st.data.get("full")
        events: SwIdentifierEvents | None = st.data.get("events")
        state: SwimaState | None = None
        if full is not None:
            software = frozenset(r.software_identifier for r in full.records)
            state = SwimaState(full.eid_epoch, full.last_eid, software)
        elif events is not None:
            old = self.store.get(device) if device is not None else None
            if old is None or old.eid_epoch != events.eid_epoch:
                return self._need("swima-full", 0,
                                  "the SWIMA events could not be applied and no inventory came")
            current = set(old.software)
            for ev in sorted(events.events, key=lambda e: e.eid):
                ident = ev.record.software_identifier
                if ev.action == SwEventAction.DELETION:
                    current.discard(ident)
                else:
                    current.add(ident)
            state = SwimaState(events.eid_epoch, events.last_eid, frozenset(current))
        else:
            known = self.store.get(device) if device is not None else None
            earliest = known.last_eid + 1 if known is not None else 0
            return self._need("swima", earliest, "the endpoint did not send its software inventory")
        if device is not None:
            self.store.put(device, state)
        st.data["inventory"] = state.software
        self.engine.record_facts(conn_id, software=tuple(sorted(state.software)))
        return state.software

    def measure(self, conn_id: int, st: ValidatorConnection, policy: Policy) -> Measured | Need:
        inv = self._inventory(conn_id, st)
        if isinstance(inv, Need):
            return inv
        if policy.type is PolicyType.SWIDT:
            return Measured(True, {"software_count": len(inv)},
                            f"{len(inv)} software identifiers collected")
        if policy.type is PolicyType.SWREQ:
            missing = [p for p in policy.patterns
                       if not any(fnmatch.fnmatchcase(s, p) for s in inv)]
            ev = {"required": list(policy.patterns), "missing": missing}
            if missing:
                return Measured(False, ev, "required software missing: " + ", ".join(missing))
            return Measured(True, ev, "all required software installed")
        found = sorted(s for s in inv if any(fnmatch.fnmatchcase(s, p) for p in policy.patterns))
        ev2 = {"forbidden": list(policy.patterns), "found": found[:_EVIDENCE_LIMIT]}
        if found:
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            return Measured(False, ev2, "forbidden software installed: " + shown)
        return Measured(True, ev2, "no forbidden software")
