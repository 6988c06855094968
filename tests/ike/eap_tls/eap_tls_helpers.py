"""Back-to-back wiring of a server and a peer method (no EAP layer, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod, Step
from tests.harness.certs import CertFactory, Issued


@dataclass
class Outcome:
    server: Decision
    peer: Decision
    rounds: int
    requests: list[bytes] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)


def run_pair(server: EapServerMethod, peer: EapPeerMethod, max_rounds: int = 500) -> Outcome:
    """Run the exchange the way the EAP layer would: Request -> Response until a decision."""
    request = server.start()
    out = Outcome(Decision.CONTINUE, Decision.CONTINUE, 0)
    for _ in range(max_rounds):
        out.rounds += 1
        out.requests.append(request)
        pstep = peer.receive(request)
        out.peer = pstep.decision
        if pstep.reply is None:
            # Peer has nothing to send: with SUCCESS it waits for EAP-Success.
            assert pstep.decision is not Decision.CONTINUE
            return out
        out.responses.append(pstep.reply)
        sstep = server.receive(pstep.reply)
        out.server = sstep.decision
        if sstep.decision is Decision.SUCCESS:
            assert sstep.reply is None
            return out
        if sstep.decision is Decision.FAILURE:
            if sstep.reply is not None and pstep.decision is Decision.CONTINUE:
                out.peer = peer.receive(sstep.reply).decision
            return out
        if pstep.decision is Decision.FAILURE:
            raise AssertionError("server continued after the peer failed")
        assert sstep.reply is not None
        request = sstep.reply
    raise AssertionError("no decision")


@dataclass
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    factory: CertFactory


def make_pki(factory: CertFactory, key_type: str = "ecdsa") -> Pki:
    ca = factory.ca("ca", key_type=key_type)
    server = factory.issue(ca, "gw.test", san_dns=["gw.test"], eku=("serverAuth",),
                           key_type=key_type)
    client = factory.issue(ca, "alice@example.com", name="alice", san_email=["alice@example.com"],
                           eku=("clientAuth",), key_type=key_type)
    return Pki(ca, server, client, factory)


class FakePostureServer:
    """A stand-in for PT-EAP (type 54): one round trip, succeeds when the peer says b"ok"."""

    eap_type = 54

    def __init__(self, identity: bytes, verdict: bytes = b"ok") -> None:
        self.identity = identity
        self.verdict = verdict
        self.rounds = 0
        self._reason: str | None = None

    def start(self) -> bytes:
        return b"\x81posture?"

    def receive(self, type_data: bytes) -> Step:
        self.rounds += 1
        if type_data == self.verdict:
            return Step(None, Decision.SUCCESS)
        self._reason = f"posture not compliant: {type_data!r}"
        return Step(None, Decision.FAILURE)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._reason


class FakePosturePeer:
    eap_type = 54

    def __init__(self, answer: bytes = b"ok") -> None:
        self.answer = answer
        self.seen: list[bytes] = []

    def receive(self, type_data: bytes) -> Step:
        self.seen.append(type_data)
        return Step(self.answer, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return None
