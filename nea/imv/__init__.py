"""Posture validators (IMVs) and the records they emit.

``nea.imv.evidence``: the result records (:class:`PolicyResult`, :class:`DeviceFacts`, ...)
and the :class:`EvidenceSink` protocol the gateway's evidence store implements.
"""

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

__all__ = [
    "DeviceFacts",
    "EvidenceSink",
    "MemoryEvidenceSink",
    "NullEvidenceSink",
    "PolicyOutcome",
    "PolicyResult",
    "RemediationRecord",
    "SessionDecision",
    "SessionStart",
]
