"""CREATE_CHILD_SA for a new CHILD_SA from the responder side (RFC 7296, 1.3.1): the gateway
moves an isolated IKE_SA to its allow child (``IkeEngine.create_child_sa`` /
``set_children``) without a new IKE_SA; the client's ``dynamic`` selectors are its virtual IP."""

from __future__ import annotations

import ipaddress

import pytest

from ike.config import AuthContext, Authorization, ChildConfig
from ike.errors import LocalProtocolError
from ike.sa import ChildSaDeleted, ChildSaFailed, ChildSaInstalled
from tests.ike.ikev2.ike_pair import MemoryPool, cl_peer, gw_peer, make_pair

ISOLATE = ChildConfig.make("isolate", local_ts=["10.9.255.0/24"])
ALLOW = ChildConfig.make("allow", local_ts=["10.1.0.0/16"])


def _pair(client_remote: str = "10.0.0.0/8"):  # type: ignore[no-untyped-def]
    pool = MemoryPool("10.9.0.0/28")

    def authorize(ctx: AuthContext) -> Authorization:
        return Authorization((ISOLATE,), pool)

    client = cl_peer(
        request_vips=(ipaddress.ip_address("0.0.0.0"),),
        children=(ChildConfig.make("home", remote_ts=[client_remote]),),
    )
    pair = make_pair((client,), (gw_peer(pool=MemoryPool(), authorize=authorize),))
    spi = pair.initiate()
    pair.pump()
    (first,) = pair.events("server", ChildSaInstalled)
    assert first.name == "isolate"
    return pair, spi, first, pool


def test_responder_creates_allow_child_and_deletes_isolate_on_same_ike_sa() -> None:
    pair, spi, first, pool = _pair()
    gw_sa = first.ike_sa
    pair.server.set_children(gw_sa, (ALLOW,))
    pair.server.create_child_sa(gw_sa, ALLOW, pair.now)
    pair.pump()
    installed = pair.events("server", ChildSaInstalled)
    assert [c.name for c in installed] == ["isolate", "allow"]
    new = installed[1]
    assert new.ike_sa == gw_sa and new.replaces is None
    assert [str(t) for t in new.local_ts] == ["10.1.0.0-10.1.255.255"]
    assert [str(t) for t in new.remote_ts] == ["10.9.0.1-10.9.0.1"]  # the client's virtual IP
    (peer_new,) = [c for c in pair.events("client", ChildSaInstalled) if c.spi_in == new.spi_out]
    assert peer_new.ike_sa == spi and peer_new.spi_out == new.spi_in
    assert [str(t) for t in peer_new.local_ts] == ["10.9.0.1-10.9.0.1"]
    assert [str(t) for t in peer_new.remote_ts] == ["10.1.0.0-10.1.255.255"]
    # the keys agree: what one side sends, the other receives with
    assert (peer_new.encr_key_out, peer_new.integ_key_out) == (new.encr_key_in, new.integ_key_in)
    pair.server.delete_child_sa(gw_sa, first.spi_in, pair.now)
    pair.pump()
    assert [d.spi_in for d in pair.events("server", ChildSaDeleted)] == [first.spi_in]
    assert [d.spi_out for d in pair.events("client", ChildSaDeleted)] == [first.spi_in]
    # the IKE_SA and its virtual IP stay; the allow child is the only one left
    assert pair.server.ike_sa_state(gw_sa) is not None and not pool.released


def test_peer_refusing_the_selectors_is_child_sa_failed() -> None:
    """A client whose policy does not cover the allow network answers TS_UNACCEPTABLE."""
    pair, _spi, first, _pool = _pair(client_remote="10.9.0.0/16")
    pair.server.create_child_sa(first.ike_sa, ALLOW, pair.now)
    pair.pump()
    (failed,) = pair.events("server", ChildSaFailed)
    assert failed.name == "allow" and failed.error == 38  # TS_UNACCEPTABLE
    assert [c.name for c in pair.events("server", ChildSaInstalled)] == ["isolate"]


def test_create_child_needs_an_idle_established_ike_sa() -> None:
    pair, _spi, first, _pool = _pair()
    pair.server.create_child_sa(first.ike_sa, ALLOW, pair.now)
    with pytest.raises(LocalProtocolError):
        pair.server.create_child_sa(first.ike_sa, ALLOW, pair.now)  # one at a time
    with pytest.raises(LocalProtocolError):
        pair.server.create_child_sa(b"\x00" * 8, ALLOW, pair.now)
