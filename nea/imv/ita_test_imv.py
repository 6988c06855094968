"""The test validator, driven by the ITA Command attribute (strongSwan's Test IMC/IMV pair).

The command the test collector sends decides: ``allow`` -> allow / compliant, ``isolate``
-> isolate / non-compliant minor, ``block`` or ``none`` -> no access / non-compliant major.
Each decision is also sent to the collector as a PA-TNC Assessment Result.

``retry`` asks for a handshake retry: on the first handshake of a connection the validator
calls :meth:`PolicyEngine.request_retry` (the gateway turns that into ``Tncs.request_retry()``
/ SRETRY once the TNCS can send one), tells the collector "don't know" in the next round
and, when solicited, gives no recommendation. On a later handshake ``retry`` is not repeated
(no retry loops): no recommendation at once. An unknown command or no command at all gives
no recommendation (the other validators decide).
"""

from __future__ import annotations

from typing import ClassVar

from nea.imv.base import PolicyValidator, ValidatorConnection
from nea.imv.subtypes import ITA_TEST
from nea.pa import AssessmentResult as PaAssessmentResult
from nea.pa import Attribute, ItaCommand, PaMessage
from nea.pb_tnc.imv import ActionRecommendation, OutboundPa, ValidatorRecommendation
from nea.pb_tnc.messages import AssessmentResult

__all__ = ["TestValidator"]

_COMMANDS = {
    "allow": (ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT),
    "isolate": (ActionRecommendation.ISOLATE, AssessmentResult.NONCOMPLIANT_MINOR),
    "block": (ActionRecommendation.NO_ACCESS, AssessmentResult.NONCOMPLIANT_MAJOR),
    "none": (ActionRecommendation.NO_ACCESS, AssessmentResult.NONCOMPLIANT_MAJOR),
}
_NO_REC = (ActionRecommendation.NO_RECOMMENDATION, AssessmentResult.DONT_KNOW)


class TestValidator(PolicyValidator):
    __test__ = False  # not a pytest test class

    NAME: ClassVar[str] = "test"
    SUBSCRIPTIONS: ClassVar[tuple[tuple[int, int], ...]] = (ITA_TEST,)
    DEFAULT_ID: ClassVar[int] = 1

    def take(self, conn_id: int, st: ValidatorConnection, attr: Attribute) -> None:
        if isinstance(attr, ItaCommand):
            st.data["command"] = attr.command

    def _verdict(self, st: ValidatorConnection, pair: tuple[ActionRecommendation,
                 AssessmentResult], reason: str) -> ValidatorRecommendation:
        reasons = {"en": reason} if pair[0] is not ActionRecommendation.ALLOW else {}
        return ValidatorRecommendation(pair[0], pair[1], reasons)

    def _assessment(self, st: ValidatorConnection, ev: AssessmentResult) -> OutboundPa:
        msg = PaMessage.create([PaAssessmentResult(int(ev))])
        return self._to_collector(st, msg, *ITA_TEST)

    def evaluate(
        self, conn_id: int, st: ValidatorConnection, *, final: bool
    ) -> list[OutboundPa]:
        command = st.data.get("command")
        if command is None:
            if final:
                self.decide(conn_id, st, ValidatorRecommendation(*_NO_REC))
            return []
        if command in _COMMANDS:
            pair = _COMMANDS[command]
            self.decide(conn_id, st, self._verdict(
                st, pair, f"the test collector sent the command {command!r}"))
            return [] if final else [self._assessment(st, pair[1])]
        if command == "retry" and self.engine.handshakes(conn_id) <= 1:
            if "retry_round" not in st.data:
                st.data["retry_round"] = st.rounds
                self.engine.request_retry(conn_id)
            elif not final and not st.data.get("told"):
                st.data["told"] = True
                return [self._assessment(st, AssessmentResult.DONT_KNOW)]
            if not final:
                return []
            reason = "the test collector asked for a handshake retry"
        elif command == "retry":
            reason = "the test collector asked for a retry again after a retry"
        else:
            reason = f"unknown test command {command!r}"
        self.decide(conn_id, st, self._verdict(st, _NO_REC, reason))
        return [] if final else [self._assessment(st, AssessmentResult.DONT_KNOW)]
