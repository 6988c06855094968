"""IKE_SA_INIT + IKE_AUTH with pre-shared keys, initiator and responder back to back."""

from __future__ import annotations

import ipaddress

from ike.sa import ChildSaInstalled, IkeSaEstablished, SaState
from tests.ike.ikev2.ike_pair import CL, GW, make_pair


def test_psk_establishes_ike_and_child_sa() -> None:
    pair = make_pair()
    spi = pair.initiate()
    pair.pump()
    est_c = pair.events("client", IkeSaEstablished)
    est_s = pair.events("server", IkeSaEstablished)
    assert len(est_c) == 1 and len(est_s) == 1
    assert str(est_s[0].remote_id) == "cl.test" and str(est_c[0].remote_id) == "gw.test"
    assert est_c[0].ike_sa == spi
    assert pair.client.ike_sa_state(spi) is SaState.ESTABLISHED
    assert est_c[0].spi_r == est_s[0].spi_r and est_c[0].spi_i == est_s[0].spi_i
    cc = pair.events("client", ChildSaInstalled)[0]
    sc = pair.events("server", ChildSaInstalled)[0]
    assert cc.spi_in == sc.spi_out and cc.spi_out == sc.spi_in
    assert cc.encr_key_out == sc.encr_key_in and cc.encr_key_in == sc.encr_key_out
    assert cc.integ_key_out == sc.integ_key_in
    assert cc.encr_key_in != cc.encr_key_out
    # narrowing: client offered 192.0.2.2/32 === 10.1.0.0/16
    assert [str(t) for t in sc.local_ts] == ["10.1.0.0-10.1.255.255"]
    assert [str(t) for t in sc.remote_ts] == ["192.0.2.2-192.0.2.2"]
    assert cc.remote_ts == sc.local_ts and cc.local_ts == sc.remote_ts
    assert not cc.udp_encap
    # four messages: IKE_SA_INIT and IKE_AUTH
    assert [n for n, _ in pair.wire] == ["c>s", "s>c", "c>s", "s>c"]
    assert ipaddress.ip_address(GW[0]) in [sc.local_ts[0].start_addr, ipaddress.ip_address(GW[0])]
    assert cc.local == CL


def test_secrets_never_reach_logs_or_reprs(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from tests.ike.ikev2.ike_pair import PSK

    caplog.set_level(logging.DEBUG, logger="ike")
    pair = make_pair()
    spi = pair.initiate()
    pair.pump()
    sa = pair.client._sas[spi]
    child = pair.events("client", ChildSaInstalled)[0]
    secrets = [PSK, sa.keys.sk_d, sa.keys.sk_ei, child.encr_key_in, child.encr_key_out]
    text = caplog.text + repr(sa) + repr(sa.keys) + repr(sa.cipher) + repr(child)
    text += repr(pair.client.config) + "".join(repr(e) for e in pair.client_events)
    assert "IKE_AUTH" in caplog.text  # the debug log did run
    for secret in secrets:
        assert secret.hex() not in text and repr(secret) not in text
