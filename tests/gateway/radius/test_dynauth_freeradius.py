"""Our CoA / Disconnect requests against an independent implementation: FreeRADIUS 3.2 as the
NAS side (its ``type = coa`` listener, answering from an unlang policy), on loopback.

FreeRADIUS verifies the Request Authenticator with the shared secret, decodes every
attribute and answers CoA-ACK / Disconnect-ACK, or NAK with the Error-Cause the policy sets;
our client must accept its answers (Response Authenticator) and report them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.radius.dynauth import Action, Outcome
from radius import AcctStatusType, ErrorCause, Verdict
from tests.gateway.radius.test_dynauth_verdicts import SECRET, Rig
from tests.harness.freeradius import FreeRadius, free_udp_port_pair
from tests.harness.tools import require

# recv-coa handles CoA-Request and Disconnect-Request alike (FreeRADIUS 3 "coa" listener).
_POLICY = """
server coa-nas {
    listen {
        type = coa
        ipaddr = 127.0.0.1
        port = %(port)d
    }
    recv-coa {
        if (&request:Acct-Session-Id == "gone") {
            update reply {
                &Error-Cause := Session-Context-Not-Found
            }
            reject
        }
        elsif (&request:Event-Timestamp && &request:NAS-Identifier == "sw1") {
            update reply {
                &Reply-Message := "applied %%{request:Tunnel-Private-Group-Id}"
            }
            ok
        }
        else {
            reject
        }
    }
    send-coa {
        ok
    }
}
"""


class CoaNas(FreeRadius):
    """FreeRADIUS with one extra virtual server listening for CoA on ``coa_port``."""

    coa_port = 0

    def _write_listeners(self) -> None:
        super()._write_listeners()
        self.coa_port = free_udp_port_pair(self.address)
        (self.raddb / "sites-enabled" / "coa-nas").write_text(_POLICY % {"port": self.coa_port})


@pytest.fixture(scope="module")
def nas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoaNas]:
    require("freeradius")
    radius = CoaNas(tmp_path_factory.mktemp("coa-nas"), secret=SECRET.decode())
    radius.start()
    try:
        yield radius
    finally:
        radius.stop()


def _rig(nas: CoaNas) -> Rig:
    return Rig(nas.coa_port)


def test_coa_to_the_allow_vlan_is_acked(nas: CoaNas) -> None:
    rig = _rig(nas)
    try:
        key = rig.accept(verdict=Verdict.ISOLATE)
        rig.acct(AcctStatusType.START, session="A1")
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ALLOW))
    finally:
        rig.close()
    assert (result.action, result.outcome) == (Action.COA, Outcome.ACK), nas.log_tail()
    assert rig.authorizer.sessions[key].verdict == Verdict.ALLOW
    log = nas.log()
    assert "CoA-Request Id" in log and 'Tunnel-Private-Group-Id:0 = "10"' in log
    assert 'Filter-Id = "employees"' in log


def test_disconnect_is_acked(nas: CoaNas) -> None:
    rig = _rig(nas)
    try:
        key = rig.accept(verdict=Verdict.ALLOW)
        rig.acct(AcctStatusType.START, session="A2")
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.NO_ACCESS))
    finally:
        rig.close()
    assert (result.action, result.outcome) == (Action.DISCONNECT, Outcome.ACK), nas.log_tail()
    assert key not in rig.authorizer.sessions
    assert "Disconnect-Request Id" in nas.log()


def test_nak_with_error_cause_is_reported(nas: CoaNas) -> None:
    rig = _rig(nas)
    try:
        key = rig.accept(verdict=Verdict.ALLOW)
        rig.acct(AcctStatusType.START, session="gone")
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.NO_ACCESS))
    finally:
        rig.close()
    assert (result.action, result.outcome, result.error_cause) == (
        Action.DISCONNECT,
        Outcome.NAK,
        ErrorCause.SESSION_CONTEXT_NOT_FOUND,
    ), nas.log_tail()
    assert key not in rig.authorizer.sessions


def test_a_nas_with_another_secret_drops_our_request(tmp_path: Path) -> None:
    require("freeradius")
    other = CoaNas(tmp_path / "other", secret="not-" + SECRET.decode())
    other.start()
    rig = _rig(other)
    try:
        key = rig.accept(verdict=Verdict.ALLOW)
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.NO_ACCESS))
    finally:
        rig.close()
        other.stop()
    assert (result.action, result.outcome) == (Action.DISCONNECT, Outcome.TIMEOUT)
    assert key in rig.authorizer.sessions  # not acknowledged: still live
