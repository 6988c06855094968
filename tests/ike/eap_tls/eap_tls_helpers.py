"""Back-to-back wiring of a server and a peer method (no EAP layer, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod
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
