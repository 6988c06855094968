"""The PB-TNC state machine of RFC 5793 section 3.2, as one table.

Everything that decides whether a batch type may be sent or received in a state lives here
(the h11 ``_state.py`` habit).  Both sides of a connection walk the same table: a batch moves
the sender's state when it is sent and the receiver's state when it arrives, so both agree.

::

    Init            --CDATA-->  Server Working      (client starts)
    Init            --SDATA-->  Client Working      (server starts)
    Server Working  --SDATA-->  Client Working
    Server Working  --RESULT--> Decided
    Client Working  --CDATA-->  Server Working
    Client Working  --CRETRY--> Server Working      (client restarts instead of CDATA)
    Decided         --CRETRY--> Server Working      (client asks for a new assessment)
    Decided         --SRETRY--> Server Working      (server asks; client answers CRETRY)
    Server Working  --CRETRY--> Server Working      ("Receive CRETRY or SRETRY" loop)
    Server Working  --SRETRY--> Server Working
    Client Working  --SRETRY--> Client Working      (full duplex: server asks while client works)
    any but End     --CLOSE-->  End

The SRETRY edges follow the RFC's figure: after an SRETRY the client answers with a CRETRY
batch carrying its fresh posture data, which keeps the server in Server Working.  (strongSwan
moves the client to Client Working on SRETRY and then refuses to send CDATA there, which is
why its SRETRY never worked.)
"""

from __future__ import annotations

import enum

from nea.pb_tnc.batch import BatchType

__all__ = ["TRANSITIONS", "PbTncState", "Role", "next_state"]


class PbTncState(enum.Enum):
    """PB-TNC states, RFC 5793 section 3.2."""

    INIT = "Init"
    SERVER_WORKING = "Server Working"
    CLIENT_WORKING = "Client Working"
    DECIDED = "Decided"
    END = "End"


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


_S = PbTncState
_B = BatchType

TRANSITIONS: dict[tuple[PbTncState, BatchType], PbTncState] = {
    (_S.INIT, _B.CDATA): _S.SERVER_WORKING,
    (_S.INIT, _B.SDATA): _S.CLIENT_WORKING,
    (_S.INIT, _B.CLOSE): _S.END,
    (_S.SERVER_WORKING, _B.SDATA): _S.CLIENT_WORKING,
    (_S.SERVER_WORKING, _B.RESULT): _S.DECIDED,
    (_S.SERVER_WORKING, _B.CRETRY): _S.SERVER_WORKING,
    (_S.SERVER_WORKING, _B.SRETRY): _S.SERVER_WORKING,
    (_S.SERVER_WORKING, _B.CLOSE): _S.END,
    (_S.CLIENT_WORKING, _B.CDATA): _S.SERVER_WORKING,
    (_S.CLIENT_WORKING, _B.CRETRY): _S.SERVER_WORKING,
    (_S.CLIENT_WORKING, _B.SRETRY): _S.CLIENT_WORKING,
    (_S.CLIENT_WORKING, _B.CLOSE): _S.END,
    (_S.DECIDED, _B.CRETRY): _S.SERVER_WORKING,
    (_S.DECIDED, _B.SRETRY): _S.SERVER_WORKING,
    (_S.DECIDED, _B.CLOSE): _S.END,
}
"""``(state, batch type) -> next state``; a missing pair is an unexpected batch type."""

_SENDERS: dict[BatchType, frozenset[Role]] = {
    _B.CDATA: frozenset({Role.CLIENT}),
    _B.CRETRY: frozenset({Role.CLIENT}),
    _B.SDATA: frozenset({Role.SERVER}),
    _B.RESULT: frozenset({Role.SERVER}),
    _B.SRETRY: frozenset({Role.SERVER}),
    _B.CLOSE: frozenset({Role.CLIENT, Role.SERVER}),
}
"""RFC 5793 4.1: who may send each batch type."""


def next_state(state: PbTncState, batch_type: BatchType, sender: Role) -> PbTncState | None:
    """The state after ``sender`` sent (or we received from it) ``batch_type``; None if illegal."""
    if sender not in _SENDERS[batch_type]:
        return None
    return TRANSITIONS.get((state, batch_type))
