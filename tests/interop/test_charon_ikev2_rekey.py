"""charon rekeys the CHILD_SA (with and without PFS) and the IKE_SA against our responder
(RFC 7296, 1.3.2, 1.3.3, 2.8, 2.18), then deletes the IKE_SA."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_charon_ikev2_psk import (
    CLIENT_CONF,
    PSK,
    Responder,
    _check,
    _gw_connection,
    _setup,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _wait(responder: Responder, pred: Any, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evs = responder.events()
        if pred(evs):
            return evs
        time.sleep(0.05)
    raise AssertionError(f"timeout; events {responder.events()}\n{responder.log()[-4000:]}")


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes128gcm16-x25519"])
def test_charon_rekeys_child_and_ike_sa(
    netns: Any, charon_factory: Any, tmp_path: Path, esp: str
) -> None:
    gw, cl = _setup(netns)
    conn = _gw_connection(
        children=[{"name": "net", "local_ts": ["10.1.0.0/16"], "esp_proposals": [esp]}]
    )
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.write_swanctl_conf(
            CLIENT_CONF
            % {
                "proposals": "aes128-sha256-x25519",
                "esp": esp,
                "auth": "psk",
                "rauth": "psk",
                "cl_id": "cl.test",
                "local_extra": "",
                "psk": PSK,
            }
        )
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        old_child = charon.list_sas()[0].child("home")

        charon.swanctl("--rekey", "--child", "home")
        evs = _wait(responder, lambda e: any(x["event"] == "ChildSaDeleted" for x in e))
        installed = [e for e in evs if e["event"] == "ChildSaInstalled"]
        assert len(installed) == 2
        (sa,) = charon.wait_for(
            lambda sas: (
                sas
                and sas[0].children
                and sas[0].children[0].raw["spi-in"] != old_child.raw["spi-in"]
                and len(sas[0].children) == 1
            )
        )
        new_child = sa.child("home")
        assert new_child.state == "INSTALLED"
        assert new_child.raw["spi-out"] == installed[1]["spi_in"]
        if esp.endswith("x25519"):
            assert new_child.raw.get("dh-group") == "CURVE_25519"

        old_ike = charon.list_sas()[0].raw["responder-spi"]
        charon.swanctl("--rekey", "--ike", "home")
        evs = _wait(
            responder,
            lambda e: (
                any(x["event"] == "IkeSaRekeyed" for x in e)
                and any(x["event"] == "IkeSaClosed" for x in e)
            ),
        )
        (sa,) = charon.wait_for(
            lambda sas: (
                sas and sas[0].raw["responder-spi"] != old_ike and sas[0].state == "ESTABLISHED"
            )
        )
        rekeyed = next(e for e in evs if e["event"] == "IkeSaRekeyed")
        assert sa.raw["responder-spi"] == rekeyed["new_ike_sa"]
        assert sa.child("home").state == "INSTALLED"  # the CHILD_SA moved along

        # the rekeyed IKE_SA still works: a CHILD_SA rekey over it, then the delete
        charon.swanctl("--rekey", "--child", "home")
        _wait(responder, lambda e: len([x for x in e if x["event"] == "ChildSaInstalled"]) == 3)
        charon.terminate(ike="home")
        _wait(responder, lambda e: len([x for x in e if x["event"] == "IkeSaClosed"]) == 2)
    except BaseException:
        print(responder.log()[-8000:])
        raise
    finally:
        responder.stop()


def test_our_responder_rekeys_child_and_ike_sa(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """rekey_time on our side: we start the CHILD_SA rekey (with PFS) and the IKE_SA rekey
    towards charon (the new IKE_SA then has us as its initiator, RFC 7296 2.18)."""
    gw, cl = _setup(netns)
    conn = _gw_connection(
        rekey_time=4,
        children=[
            {
                "name": "net",
                "local_ts": ["10.1.0.0/16"],
                "esp_proposals": ["aes128gcm16-x25519"],
                "rekey_time": 2,
            }
        ],
    )
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.write_swanctl_conf(
            CLIENT_CONF
            % {
                "proposals": "aes128-sha256-x25519",
                "esp": "aes128gcm16-x25519",
                "auth": "psk",
                "rauth": "psk",
                "cl_id": "cl.test",
                "local_extra": "",
                "psk": PSK,
            }
        )
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        first_ike = charon.list_sas()[0].raw["initiator-spi"]
        evs = _wait(
            responder,
            lambda e: (
                any(x["event"] == "IkeSaRekeyed" for x in e)
                and any(x["event"] == "ChildSaDeleted" for x in e)
            ),
            timeout=15,
        )
        installed = [e for e in evs if e["event"] == "ChildSaInstalled"]
        assert len(installed) >= 2
        (sa,) = charon.wait_for(
            lambda sas: (
                len(sas) == 1
                and sas[0].state == "ESTABLISHED"
                and sas[0].raw["initiator-spi"] != first_ike
            ),
            timeout=10,
        )
        rekeyed = next(e for e in evs if e["event"] == "IkeSaRekeyed")
        assert sa.raw["initiator-spi"] == rekeyed["new_ike_sa"]  # we initiated the new SA
        # rekeys repeat every 2 s: look at the installed CHILD_SA(s) of this moment
        installed_now = [c for c in sa.children if c.state == "INSTALLED"]
        assert installed_now, sa.children
        child = installed_now[-1]
        spis = {e["spi_out"] for e in responder.events() if e["event"] == "ChildSaInstalled"}
        assert child.raw["spi-in"] in spis and child.raw["spi-in"] != installed[0]["spi_out"]
        assert "CURVE_25519" in str(child.raw.get("dh-group", ""))
        assert "received DELETE for IKE_SA" in charon.log()
    except BaseException:
        print(responder.log()[-8000:])
        raise
    finally:
        responder.stop()
