"""Posture validators (IMVs) and the records they emit.

Build the validators of a gateway from a policy::

    engine = PolicyEngine(load_policy("policy.toml"), clock=wall_clock, sink=evidence_sink)
    validators = build_validators(engine, swima_store=store)
    engine.open_connection(conn_id, identity="carol@example.com")
    tncs = Tncs(validators, connection_id=conn_id)

``nea.imv.evidence``: the result records (:class:`PolicyResult`, :class:`DeviceFacts`, ...)
and the :class:`EvidenceSink` protocol the gateway's evidence store implements.
"""

from nea.imv.base import Measured, Need, PolicyValidator, ValidatorConnection
from nea.imv.engine import AppliedEnforcement, PolicyEngine, WallClock
from nea.imv.evidence import (
    DeviceFacts,
    EvidenceSink,
    MemoryEvidenceSink,
    NullEvidenceSink,
    PolicyOutcome,
    PolicyResult,
    RemediationRecord,
    SessionDecision,
    SessionStart,
)
from nea.imv.factory import VALIDATOR_NAMES, build_validators
from nea.imv.ita_test_imv import TestValidator
from nea.imv.os_imv import OsValidator
from nea.imv.ports_imv import PortsValidator
from nea.imv.subtypes import ITA_TEST, OS, PORTS, SWIMA, ItaSubtype, PaSubtype
from nea.imv.swima_imv import MemorySwimaStore, SwimaState, SwimaStore, SwimaValidator

__all__ = [
    "ITA_TEST",
    "OS",
    "PORTS",
    "SWIMA",
    "VALIDATOR_NAMES",
    "AppliedEnforcement",
    "DeviceFacts",
    "EvidenceSink",
    "ItaSubtype",
    "Measured",
    "MemoryEvidenceSink",
    "MemorySwimaStore",
    "Need",
    "NullEvidenceSink",
    "OsValidator",
    "PaSubtype",
    "PolicyEngine",
    "PolicyOutcome",
    "PolicyResult",
    "PolicyValidator",
    "PortsValidator",
    "RemediationRecord",
    "SessionDecision",
    "SessionStart",
    "SwimaState",
    "SwimaStore",
    "SwimaValidator",
    "TestValidator",
    "ValidatorConnection",
    "WallClock",
    "build_validators",
]
