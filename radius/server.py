"""The sans-I/O RADIUS server engine: 802.1X / EAP over RADIUS (RFC 3579) and accounting.

Datagrams and a monotonic ``now`` go in through :meth:`RadiusServer.receive_datagram`, which
returns the datagram to send back (or None: RFC 2865 says invalid packets are silently
discarded); events come out of :meth:`RadiusServer.next_event`; :meth:`get_timer` and
:meth:`handle_timer` age out idle conversations and the duplicate cache.

A conversation is the life of one EAP authentication across Access-Request/Access-Challenge
round trips, tied together by the State attribute (RFC 2865 section 5.24, RFC 3579 section
2.6.1).  The engine does not speak EAP itself: it drives an *EAP server* object built by a
factory that the composition root supplies (``ike.eap.server`` with the configured methods),
and only frames what that object says.  When the EAP server succeeds the engine asks the
*verdict source* (NEA posture, PT-EAP) which access to grant:

=============  ==================================================================
verdict        answer
=============  ==================================================================
None / ALLOW   Access-Accept, allow VLAN and Filter-Id if configured
ISOLATE        Access-Accept with the quarantine VLAN and Filter-Id (Access-Reject
               when no quarantine VLAN is configured: fail closed)
NO_ACCESS      Access-Reject
=============  ==================================================================

Access-Accept carries MS-MPPE-Recv-Key = MSK[0:32] and MS-MPPE-Send-Key = MSK[32:64]
(RFC 2548 section 2.4, RFC 3579 section 3.1), and VLANs the RFC 3580 section 3.31 way:
Tunnel-Type = VLAN, Tunnel-Medium-Type = IEEE-802, Tunnel-Private-Group-ID = the VLAN.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from radius.attributes import (
    Attribute,
    IntegerAttribute,
    StringAttribute,
    TaggedIntegerAttribute,
    TaggedStringAttribute,
    TextAttribute,
    VendorAttribute,
    microsoft,
)
from radius.constants import (
    AcctStatusType,
    AttributeType,
    Code,
    MicrosoftAttribute,
    TunnelMediumType,
    TunnelType,
)
from radius.crypto import encrypt_mppe_key
from radius.dedup import DuplicateCache
from radius.errors import LocalProtocolError, RemoteProtocolError
from radius.events import (
    AccessAccepted,
    AccessRejected,
    AccountingRecord,
    Address,
    Event,
    PacketDropped,
    Verdict,
)
from radius.packet import Packet, eap_message_attributes, encode_response, verify_request

__all__ = [
    "AuthorizationPolicy",
    "Conversation",
    "EapServerSession",
    "RadiusClient",
    "RadiusServer",
    "RequestContext",
    "VlanAssignment",
    "inner_identity",
    "vlan_attributes",
]

log = logging.getLogger(__name__)

_T = AttributeType
_EAP_FAILURE = 4
_TERMINATION_RADIUS_REQUEST = 1
"""RFC 2865 section 5.29: re-authenticate when Session-Timeout expires (RFC 3580 3.19)."""
_CLIENT_MEMO_SIZE = 4096
"""Most source addresses whose client :meth:`RadiusServer.client_for` remembers."""


class EapServerSession(Protocol):
    """What the engine needs from an EAP server (``ike.eap.server``): whole EAP packets."""

    def start(self) -> bytes:
        """The first EAP Request (Request/Identity); only called after an EAP-Start."""
        ...

    def receive(self, packet: bytes) -> bytes | None:
        """Consume an EAP Response; return the next Request, Success or Failure, or None
        when the packet was silently discarded (RFC 3748 section 4.1).  The first packet of a
        conversation may be an Identity Response without a preceding ``start()``: the NAS
        did the Identity exchange (RFC 3579 section 2.1)."""
        ...

    @property
    def succeeded(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    @property
    def msk(self) -> bytes | None: ...

    @property
    def failure_reason(self) -> str | None: ...

    # Optional: ``inner_identity`` (bytes or None), the identity authenticated inside a tunnel
    # method; when present the engine names it in AccessAccepted / AccessRejected.


@dataclass(frozen=True, slots=True)
class RadiusClient:
    """A NAS allowed to talk to us: an address or prefix and its shared secret."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    secret: bytes = field(repr=False)
    name: str = ""
    require_message_authenticator: bool = True
    """Blast-RADIUS: drop Access-Requests without Message-Authenticator.  Only turn this off
    for a NAS that cannot send it, on a network where forging its packets is impossible."""

    @classmethod
    def from_prefix(
        cls,
        prefix: str,
        secret: bytes | str,
        name: str = "",
        *,
        require_message_authenticator: bool = True,
    ) -> RadiusClient:
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise LocalProtocolError("a RADIUS client needs a non-empty shared secret")
        return cls(
            ipaddress.ip_network(prefix, strict=False),
            secret,
            name or prefix,
            require_message_authenticator,
        )


@dataclass(frozen=True, slots=True)
class VlanAssignment:
    """RFC 3580 section 3.31 VLAN plus an optional Filter-Id (RFC 2865 section 5.11)."""

    vlan: str | None = None
    filter_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    session_timeout: int | None = None
    allow: VlanAssignment = VlanAssignment()
    isolate: VlanAssignment | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the EAP server factory learns about the authentication it is built for."""

    client: RadiusClient
    source: Address
    user_name: str | None
    calling_station_id: str | None
    called_station_id: str | None
    nas_identifier: str | None


@dataclass(slots=True)
class Conversation:
    """One EAP authentication in progress (keyed by its current State)."""

    context: RequestContext
    eap: EapServerSession
    last_seen: float
    rounds: int = 0


VerdictSource = Callable[[Conversation], Verdict | None]
EapServerFactory = Callable[[RequestContext], EapServerSession]


def inner_identity(eap: object) -> str | None:
    """The EAP server's optional ``inner_identity`` as text (None when it has none)."""
    value = getattr(eap, "inner_identity", None)
    if isinstance(value, bytes) and value:
        return value.decode("utf-8", "replace")
    if isinstance(value, str) and value:
        return value
    return None


def verdict_attribute(conversation: Conversation) -> Verdict | None:
    """Default verdict source: a ``verdict`` attribute on the EAP server object, if any."""
    verdict = getattr(conversation.eap, "verdict", None)
    return verdict if isinstance(verdict, Verdict) else None


class RadiusServer:
    def __init__(
        self,
        clients: Sequence[RadiusClient],
        eap_factory: EapServerFactory,
        *,
        policy: AuthorizationPolicy | None = None,
        verdict: VerdictSource = verdict_attribute,
        random: Callable[[int], bytes] = secrets.token_bytes,
        conversation_timeout: float = 60.0,
        max_rounds: int = 100,
        max_conversations: int = 16384,
        duplicate_lifetime: float = 10.0,
    ) -> None:
        self._clients = sorted(clients, key=lambda c: c.network.prefixlen, reverse=True)
        self._client_memo: dict[str, RadiusClient] = {}
        self._eap_factory = eap_factory
        self._policy = policy or AuthorizationPolicy()
        self._verdict = verdict
        self._random = random
        self._timeout = conversation_timeout
        self._max_rounds = max_rounds
        self._max_conversations = max_conversations
        self._duplicates = DuplicateCache(duplicate_lifetime)
        self._conversations: dict[bytes, Conversation] = {}
        # Conversation deadlines: a heap of (last_seen + timeout, seq, state, conversation)
        # with lazy deletion.  An entry is live while ``state`` still maps to that very
        # conversation and its deadline is the conversation's current one; anything else is
        # skipped when it reaches the top (or dropped when the heap is compacted), so
        # get_timer and handle_timer cost O(log n) per conversation step, not O(n).
        self._deadlines: list[tuple[float, int, bytes, Conversation]] = []
        self._deadline_seq = 0
        self._events: deque[Event] = deque()
        self._next_sweep = float("-inf")

    # -- public API ----------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Address, now: float) -> bytes | None:
        """Handle one datagram from ``source``; return the answer to send back, if any."""
        if now >= self._next_sweep:
            self.handle_timer(now)
        client = self.client_for(source[0])
        if client is None:
            self._drop(source, "packet from unknown client")
            return None
        try:
            packet = verify_request(
                data,
                client.secret,
                require_message_authenticator=client.require_message_authenticator,
            )
        except RemoteProtocolError as exc:
            self._drop(source, f"from client {client.name}: {exc}")
            return None
        seen, cached = self._duplicates.lookup(
            source, packet.code, packet.identifier, packet.authenticator, now
        )
        if seen:
            log.debug(
                "duplicate request id %d from %s, answering from cache", packet.identifier, source
            )
            return cached
        answer = self._dispatch(client, packet, source, now)
        response = None
        if answer is not None:
            answer = Packet(
                answer.code,
                packet.identifier,
                attributes=answer.attributes + packet.get_all(_T.PROXY_STATE),
            )
            response = encode_response(answer, packet.authenticator, client.secret)
        self._duplicates.store(
            source, packet.code, packet.identifier, packet.authenticator, response, now
        )
        return response

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadline = self._next_deadline()
        expiry = self._duplicates.next_expiry()
        if deadline is None or (expiry is not None and expiry < deadline):
            return expiry
        return deadline

    def handle_timer(self, now: float) -> None:
        self._next_sweep = now + 1.0
        self._duplicates.expire(now)
        while (deadline := self._next_deadline()) is not None and deadline <= now:
            _, _, state, conversation = heapq.heappop(self._deadlines)
            del self._conversations[state]
            log.info("EAP conversation for %r timed out", conversation.context.user_name)

    def client_for(self, host: str) -> RadiusClient | None:
        """The client whose network holds ``host`` (longest prefix), or None.

        The answer for a known client's address is remembered (the client list is fixed, so
        it cannot change); unknown hosts are looked up every time, so that spoofed sources
        cannot fill the memo."""
        client = self._client_memo.get(host)
        if client is None:
            client = self._find_client(host)
            if client is not None and len(self._client_memo) < _CLIENT_MEMO_SIZE:
                self._client_memo[host] = client
        return client

    def _find_client(self, host: str) -> RadiusClient | None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for client in self._clients:
            if address.version == client.network.version and address in client.network:
                return client
        return None

    @property
    def conversations(self) -> int:
        return len(self._conversations)

    # -- conversation table --------------------------------------------------------------

    def _store(self, state: bytes, conversation: Conversation) -> None:
        """Keep ``conversation`` under ``state`` until its deadline (the only way in)."""
        self._conversations[state] = conversation
        self._deadline_seq += 1
        entry = (conversation.last_seen + self._timeout, self._deadline_seq, state, conversation)
        heapq.heappush(self._deadlines, entry)
        if len(self._deadlines) > 2 * len(self._conversations) + 64:
            self._compact()

    def _live(self, entry: tuple[float, int, bytes, Conversation]) -> bool:
        deadline, _, state, conversation = entry
        return (
            self._conversations.get(state) is conversation
            and conversation.last_seen + self._timeout == deadline
        )

    def _next_deadline(self) -> float | None:
        """The earliest live deadline; superseded entries on top are discarded."""
        heap = self._deadlines
        while heap:
            if self._live(heap[0]):
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def _compact(self) -> None:
        """Drop superseded entries (amortised: runs after O(n) pushes, costs O(n))."""
        self._deadlines = [e for e in self._deadlines if self._live(e)]
        heapq.heapify(self._deadlines)

    # -- dispatch ------------------------------------------------------------------------

    def _drop(self, source: Address, reason: str) -> None:
        log.warning("RADIUS packet from %s:%d dropped: %s", source[0], source[1], reason)
        self._events.append(PacketDropped(source, reason))

    def _dispatch(
        self, client: RadiusClient, packet: Packet, source: Address, now: float
    ) -> Packet | None:
        if packet.code == Code.ACCESS_REQUEST:
            return self._access_request(client, packet, source, now)
        if packet.code == Code.ACCOUNTING_REQUEST:
            return self._accounting_request(client, packet, source)
        if packet.code == Code.STATUS_SERVER:
            # RFC 5997 section 3: answer with Access-Accept (Message-Authenticator included).
            return Packet(Code.ACCESS_ACCEPT, packet.identifier)
        self._drop(source, f"{packet.code.name} is not served here")
        return None

    def _access_request(
        self, client: RadiusClient, packet: Packet, source: Address, now: float
    ) -> Packet | None:
        context = RequestContext(
            client,
            source,
            packet.text(_T.USER_NAME),
            packet.text(_T.CALLING_STATION_ID),
            packet.text(_T.CALLED_STATION_ID),
            packet.text(_T.NAS_IDENTIFIER),
        )
        eap = packet.eap_message()
        if eap is None:
            return self._reject(context, "Access-Request without EAP-Message (only EAP served)")
        state = packet.string(_T.STATE)
        if state is None:
            if len(self._conversations) >= self._max_conversations:
                self._drop(source, "too many EAP conversations in progress")
                return None
            try:
                eap_server = self._eap_factory(context)
            except Exception as exc:  # a broken method configuration costs this request only
                log.exception("EAP server factory failed")
                return self._reject(context, f"cannot start EAP: {exc}", eap=eap)
            conversation = Conversation(context, eap_server, now)
            if not eap:  # EAP-Start (RFC 3579 2.1): the NAS wants us to ask for the identity.
                return self._challenge(conversation, conversation.eap.start())
            # Otherwise the NAS did the Identity exchange and forwards the Identity Response:
            # the EAP server takes it as its first packet (RFC 3579 section 2.1 pass-through).
        else:
            found = self._conversations.get(state)
            if found is None or found.context.client != client:
                # Another NAS presenting this State must not end the owner's conversation.
                return self._reject(context, "unknown or expired State", eap=eap)
            del self._conversations[state]
            conversation = found
            conversation.last_seen = now
        conversation.rounds += 1
        if conversation.rounds > self._max_rounds:
            return self._reject(context, "too many EAP round trips", eap=eap)
        if not eap:
            return self._reject(context, "EAP-Start inside a conversation", eap=None)
        try:
            reply = conversation.eap.receive(eap)
        except Exception as exc:  # an EAP engine bug must end this conversation only
            log.exception("EAP server raised on a Response")
            return self._reject(context, f"EAP server error: {exc}", eap=eap)
        if conversation.eap.succeeded:
            return self._accept(conversation, reply, packet.authenticator)
        if conversation.eap.failed:
            reason = conversation.eap.failure_reason or "EAP authentication failed"
            return self._reject(context, reason, eap_reply=reply, conversation=conversation)
        if reply is None:
            # The EAP layer discarded the Response (RFC 3748 section 4.1); keep the
            # conversation so the NAS can retransmit under the same State.
            if state is not None:
                self._store(state, conversation)
            log.info("EAP response from %r discarded by the EAP server", context.user_name)
            return None
        return self._challenge(conversation, reply)

    def _new_state(self) -> bytes:
        while True:
            state = self._random(16)
            if state not in self._conversations:
                return state

    def _challenge(self, conversation: Conversation, eap_request: bytes) -> Packet:
        state = self._new_state()
        self._store(state, conversation)
        return Packet(
            Code.ACCESS_CHALLENGE,
            0,
            attributes=(
                *eap_message_attributes(eap_request),
                StringAttribute(_T.STATE, state),
            ),
        )

    def _reject(
        self,
        context: RequestContext,
        reason: str,
        *,
        eap: bytes | None = None,
        eap_reply: bytes | None = None,
        verdict: Verdict | None = None,
        reply_message: str = "Authentication failed",
        conversation: Conversation | None = None,
    ) -> Packet:
        log.info(
            "Access-Reject for %r from client %s: %s",
            context.user_name,
            context.client.name,
            reason,
        )
        self._events.append(
            AccessRejected(
                context.client.name,
                context.source,
                context.user_name,
                context.calling_station_id,
                reason,
                verdict,
                inner_identity(conversation.eap) if conversation is not None else None,
            )
        )
        attributes: list[Attribute] = []
        if eap_reply is None and eap is not None and len(eap) >= 2:
            # RFC 3579 section 2.6.3: an Access-Reject for EAP carries EAP-Failure.
            eap_reply = bytes([_EAP_FAILURE, eap[1], 0, 4])
        if eap_reply is not None:
            attributes.extend(eap_message_attributes(eap_reply))
        attributes.append(TextAttribute(_T.REPLY_MESSAGE, reply_message))
        return Packet(Code.ACCESS_REJECT, 0, attributes=tuple(attributes))

    def _accept(
        self, conversation: Conversation, eap_success: bytes | None, request_authenticator: bytes
    ) -> Packet:
        context = conversation.context
        verdict = self._verdict(conversation)
        policy = self._policy
        if verdict == Verdict.NO_ACCESS:
            return self._reject(
                context,
                "posture verdict: no access",
                eap=None,
                verdict=verdict,
                eap_reply=None if eap_success is None else _as_failure(eap_success),
                reply_message="Access denied by posture assessment",
                conversation=conversation,
            )
        assignment = policy.allow
        if verdict == Verdict.ISOLATE:
            if policy.isolate is None:
                return self._reject(
                    context,
                    "posture verdict: isolate, but no quarantine VLAN configured",
                    verdict=verdict,
                    eap_reply=None if eap_success is None else _as_failure(eap_success),
                    reply_message="Access denied by posture assessment",
                    conversation=conversation,
                )
            assignment = policy.isolate
        attributes: list[Attribute] = []
        if eap_success is not None:
            attributes.extend(eap_message_attributes(eap_success))
        if context.user_name is not None:
            attributes.append(TextAttribute(_T.USER_NAME, context.user_name))
        msk = conversation.eap.msk
        if policy.session_timeout is not None:
            attributes.append(IntegerAttribute(_T.SESSION_TIMEOUT, policy.session_timeout))
            attributes.append(IntegerAttribute(_T.TERMINATION_ACTION, _TERMINATION_RADIUS_REQUEST))
        attributes.extend(vlan_attributes(assignment))
        inner = inner_identity(conversation.eap)
        log.info(
            "Access-Accept for %r%s from client %s (verdict %s, VLAN %s)",
            context.user_name,
            f" (inner identity {inner!r})" if inner is not None else "",
            context.client.name,
            verdict.value if verdict else "none",
            assignment.vlan,
        )
        self._events.append(
            AccessAccepted(
                context.client.name,
                context.source,
                context.user_name,
                context.calling_station_id,
                verdict,
                assignment.vlan,
                assignment.filter_id,
                policy.session_timeout,
                msk is not None,
                inner,
            )
        )
        if msk is not None:
            attributes.extend(self._mppe_keys(msk, context.client.secret, request_authenticator))
        return Packet(Code.ACCESS_ACCEPT, 0, attributes=tuple(attributes))

    def _mppe_keys(
        self, msk: bytes, secret: bytes, request_authenticator: bytes
    ) -> Iterable[Attribute]:
        """RFC 3579 section 3.1 / RFC 2548 2.4: Recv-Key = MSK[0:32], Send-Key = MSK[32:64],
        each salted with a distinct salt whose high bit is set."""
        if len(msk) < 64:
            raise LocalProtocolError(f"MSK of {len(msk)} octets, need 64")
        first = bytes([self._random(1)[0] | 0x80]) + self._random(1)
        second = bytes([first[0], first[1] ^ 0x01])
        yield microsoft(
            VendorAttribute(
                MicrosoftAttribute.MS_MPPE_RECV_KEY,
                encrypt_mppe_key(msk[0:32], secret, request_authenticator, first),
            )
        )
        yield microsoft(
            VendorAttribute(
                MicrosoftAttribute.MS_MPPE_SEND_KEY,
                encrypt_mppe_key(msk[32:64], secret, request_authenticator, second),
            )
        )

    def _accounting_request(self, client: RadiusClient, packet: Packet, source: Address) -> Packet:
        raw_status = packet.integer(_T.ACCT_STATUS_TYPE)
        status: AcctStatusType | int | None = raw_status
        if raw_status is not None and raw_status in AcctStatusType._value2member_map_:
            status = AcctStatusType(raw_status)
        record = AccountingRecord(
            client.name,
            source,
            status,
            packet.text(_T.ACCT_SESSION_ID),
            packet.text(_T.USER_NAME),
            packet.text(_T.CALLING_STATION_ID),
            packet.integer(_T.ACCT_SESSION_TIME),
            packet.integer(_T.ACCT_INPUT_OCTETS),
            packet.integer(_T.ACCT_OUTPUT_OCTETS),
            packet.integer(_T.ACCT_TERMINATE_CAUSE),
            packet.attributes,
        )
        log.info(
            "accounting %s for session %r of %r from client %s",
            status.name if isinstance(status, AcctStatusType) else status,
            record.session_id,
            record.user_name,
            client.name,
        )
        self._events.append(record)
        # RFC 2866 section 4.2: answer once the record is taken.
        return Packet(Code.ACCOUNTING_RESPONSE, 0)


def _as_failure(eap_success: bytes) -> bytes:
    return bytes([_EAP_FAILURE, eap_success[1], 0, 4])


def vlan_attributes(assignment: VlanAssignment) -> Iterable[Attribute]:
    """RFC 3580 section 3.31 VLAN attributes (tag 0, Group-ID untagged) and Filter-Id."""
    if assignment.vlan is not None:
        yield TaggedIntegerAttribute(_T.TUNNEL_TYPE, 0, TunnelType.VLAN)
        yield TaggedIntegerAttribute(_T.TUNNEL_MEDIUM_TYPE, 0, TunnelMediumType.IEEE_802)
        yield TaggedStringAttribute(_T.TUNNEL_PRIVATE_GROUP_ID, None, assignment.vlan.encode())
    if assignment.filter_id is not None:
        yield TextAttribute(_T.FILTER_ID, assignment.filter_id)
