"""A pool whose answer comes later (:class:`ike.config.AddressPending`): the responder holds
its IKE_AUTH response, drops the peer's retransmits meanwhile, and answers once
:meth:`IkeEngine.resume_auth` is called; attributes the pool offers reach the CFG_REPLY."""

from __future__ import annotations

import ipaddress

from ike.config import AddressPending, Identity
from ike.constants import CfgAttribute
from ike.payloads import IpAddress
from ike.sa import IkeSaClosed, IkeSaEstablished
from tests.ike.ikev2.ike_pair import cl_peer, gw_peer, make_pair

DNS = ipaddress.ip_address("198.51.100.53")


class SlowPool:
    def __init__(self) -> None:
        self.ready = False
        self.asked = 0
        self.released: list[IpAddress] = []

    def acquire(
        self, identity: Identity, requested: IpAddress | None, version: int
    ) -> IpAddress | None:
        self.asked += 1
        if not self.ready:
            raise AddressPending("not yet")
        return ipaddress.ip_address("10.4.0.7")

    def attributes(self, identity: Identity) -> list[tuple[int, bytes]]:
        return [
            (CfgAttribute.INTERNAL_IP4_DNS, DNS.packed),
            (CfgAttribute.APPLICATION_VERSION, b"x"),
        ]

    def release(self, identity: Identity, address: IpAddress) -> None:
        self.released.append(address)


def test_held_ike_auth_is_answered_on_resume() -> None:
    pool = SlowPool()
    pair = make_pair(
        (cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),)),), (gw_peer(pool=pool),)
    )
    pair.initiate()
    pair.pump()
    assert pool.asked == 1 and not pair.events("client", IkeSaEstablished)
    (spi,) = list(pair.server)
    # The client retransmits its IKE_AUTH request: dropped, the pool is not asked again.
    before = pair.server.stats["unexpected_message_id"]
    pair.advance(pair.client.get_timer() - pair.now)  # type: ignore[operator]
    pair.pump()
    assert pool.asked == 1 and pair.server.stats["unexpected_message_id"] == before + 1
    assert not pair.events("client", IkeSaEstablished)
    pool.ready = True
    pair.server.resume_auth(spi, pair.now)
    pair.pump()
    (est,) = pair.events("client", IkeSaEstablished)
    assert [str(v) for v in est.virtual_ips] == ["10.4.0.7"]
    (srv,) = pair.events("server", IkeSaEstablished)
    assert srv.virtual_ips == est.virtual_ips
    # Only requested attribute types are sent (the client asked for DNS, not the version).
    sa = pair.server._sas[spi]
    assert sa.held_auth is None
    # A second resume is a no-op.
    pair.server.resume_auth(spi, pair.now)
    assert pair.server.datagrams_to_send(pair.now) == []


def test_cfg_reply_carries_requested_pool_attributes() -> None:
    from ike.sa import IkeSa

    pool = SlowPool()
    pool.ready = True
    pair = make_pair(
        (cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),)),), (gw_peer(pool=pool),)
    )
    replies = []
    original = IkeSa._assign_vips

    def spy(self: IkeSa, peer: object, cp: object) -> object:
        out = original(self, peer, cp)  # type: ignore[arg-type]
        replies.append(out)
        return out

    IkeSa._assign_vips = spy  # type: ignore[method-assign,assignment]
    try:
        pair.initiate()
        pair.pump()
    finally:
        IkeSa._assign_vips = original  # type: ignore[method-assign]
    (reply,) = replies
    types = [a.attr_type for a in reply.attributes]  # type: ignore[attr-defined]
    assert types == [CfgAttribute.INTERNAL_IP4_ADDRESS, CfgAttribute.INTERNAL_IP4_DNS]
    assert reply.attributes[1].value == DNS.packed  # type: ignore[attr-defined]


def test_held_ike_auth_times_out_without_an_answer() -> None:
    pool = SlowPool()
    pair = make_pair(
        (cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),)),), (gw_peer(pool=pool),)
    )
    pair.initiate()
    pair.pump()
    for _ in range(40):
        t = pair.server.get_timer()
        if t is None:
            break
        pair.advance(max(t - pair.now, 0.0))
        pair.pump()
    assert pair.events("server", IkeSaClosed)
    assert not pair.events("server", IkeSaEstablished)
