"""RFC 4478 AUTH_LIFETIME: the responder asks an established peer to re-authenticate (an
INFORMATIONAL with the notify); the peer's engine reports it as ReauthRequested."""

from __future__ import annotations

import pytest

from ike.errors import LocalProtocolError
from ike.sa import IkeSaClosed, IkeSaEstablished, ReauthRequested
from tests.ike.ikev2.ike_pair import make_pair


def test_auth_lifetime_reaches_the_peer() -> None:
    pair = make_pair()
    client_spi = pair.initiate()
    pair.pump()
    (srv,) = pair.events("server", IkeSaEstablished)
    pair.server.request_reauth(srv.ike_sa, pair.now, lifetime=30)
    pair.pump()
    assert pair.events("client", ReauthRequested) == [ReauthRequested(client_spi, 30)]
    # The exchange completed (answered), both IKE_SAs stay up until the peer acts.
    assert not pair.events("client", IkeSaClosed) and not pair.events("server", IkeSaClosed)
    assert pair.server._sas[srv.ike_sa].outstanding is None


def test_auth_lifetime_needs_an_established_sa_and_a_sane_value() -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    (srv,) = pair.events("server", IkeSaEstablished)
    with pytest.raises(LocalProtocolError):
        pair.server.request_reauth(srv.ike_sa, pair.now, lifetime=-1)
    with pytest.raises(LocalProtocolError):
        pair.server.request_reauth(b"\x00" * 8, pair.now)
