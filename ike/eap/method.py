"""The contract between the EAP state machines and the methods they run.

RFC 3748 section 5 and 7: an EAP *method* sees only the Type-Data of Request and Response
packets of its own type; the EAP layer (``ike.eap``) owns the header, the identifier,
retransmission, NAK, Success and Failure.  Every method of the project, simple (MD5,
MS-CHAPv2, GTC), tunnelled (EAP-TLS, TTLS, PEAP, FAST) or posture (PT-EAP in ``nea.pt_eap``)
implements one of the two protocols below.  Tunnel methods take their inner methods as
factories of the same shape, so ``ike`` never imports ``nea``: the composition root in
``gateway`` hands PT-EAP in.

Methods are sans-I/O: no sockets, no clocks of their own (pass ``now`` or a wall clock in
through the constructor where certificates or lifetimes need one).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Decision",
    "EapPeerMethod",
    "EapServerMethod",
    "IdentifierAware",
    "PeerMethodFactory",
    "ServerMethodFactory",
    "Step",
]


class Decision(enum.Enum):
    """What a method has decided after consuming one message (RFC 4137 methodState/decision)."""

    CONTINUE = "continue"
    """More round trips are needed; ``Step.reply`` holds the next message."""
    SUCCESS = "success"
    """Server: authentication succeeded, send EAP-Success (``reply`` is None).
    Peer: the method is done on this side and may accept EAP-Success (``reply`` is the last
    Response, or None when there is nothing more to send)."""
    FAILURE = "failure"
    """Authentication failed; ``Step.reply`` may hold a last message (for example a TLS alert or
    a failure TLV) that must be sent before the EAP layer ends with EAP-Failure."""


@dataclass(frozen=True, slots=True)
class Step:
    """One move of a method: the Type-Data to send (without the EAP header or type byte)."""

    reply: bytes | None
    decision: Decision = Decision.CONTINUE


@runtime_checkable
class EapServerMethod(Protocol):
    """Authenticator side of a method."""

    @property
    def eap_type(self) -> int:
        """The EAP Type number (RFC 3748 section 5; e.g. 13 EAP-TLS, 21 TTLS, 54 PT-EAP)."""
        ...

    def start(self) -> bytes:
        """Type-Data of the method's first Request."""
        ...

    def receive(self, type_data: bytes) -> Step:
        """Consume the Type-Data of a Response and say what comes next."""
        ...

    def msk(self) -> bytes | None:
        """Master Session Key (64 bytes) once the method succeeded, else None."""
        ...

    def emsk(self) -> bytes | None:
        """Extended MSK (64 bytes) once the method succeeded, else None."""
        ...

    @property
    def failure_reason(self) -> str | None:
        """A readable cause for the log when the method failed (never a secret)."""
        ...


@runtime_checkable
class EapPeerMethod(Protocol):
    """Peer side of a method.

    A tunnel method that may still take Requests after it said SUCCESS (the server chains a
    posture method inside the tunnel) sets an attribute ``may_continue = True`` (RFC 4137
    methodState MAY_CONT); the EAP peer then keeps feeding it instead of starting afresh.
    """

    @property
    def eap_type(self) -> int: ...

    def receive(self, type_data: bytes) -> Step:
        """Consume the Type-Data of a Request; ``reply`` is the Type-Data of the Response."""
        ...

    def msk(self) -> bytes | None: ...

    def emsk(self) -> bytes | None: ...

    @property
    def failure_reason(self) -> str | None: ...


@runtime_checkable
class IdentifierAware(Protocol):
    """Optional extra for a method whose data depends on the EAP Identifier.

    EAP-MD5 hashes the Identifier of the Request (RFC 3748 5.4, RFC 1994 4.1), which the
    method cannot see in its Type-Data.  The EAP layer calls ``set_identifier`` with the
    Identifier of the Request that carries (server) or carried (peer) the method's data: the
    server right after ``start()`` / ``receive()`` returned a Request's Type-Data, the peer
    just before ``receive()``.  Methods that do not need it simply do not define it.
    """

    def set_identifier(self, identifier: int) -> None: ...


ServerMethodFactory = Callable[[bytes], EapServerMethod]
"""Builds a fresh server method for the peer's EAP identity (the Identity Response data)."""

PeerMethodFactory = Callable[[], EapPeerMethod]
"""Builds a fresh peer method."""
