"""``nea-gateway reassess``: AUTH_LIFETIME 0 (RFC 4478) makes Debian's charon re-authenticate
(a new IKE_SA with a full IKE_AUTH); the old IKE_SA goes, the client keeps its virtual IP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_pools_charon import Daemon, client, site, vip_of

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def test_charon_reauthenticates_on_auth_lifetime(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    gw, ((ns_a, gw_a),) = site(netns, 1)
    daemon = Daemon(gw, tmp_path / "gw", '[pools.rw]\naddrs = "10.3.0.0/28"\n')
    try:
        a = client(charon_factory, ns_a, "a", gw_a, tmp_path)
        a.initiate("home")
        vip = vip_of(a)
        (before,) = json.loads(daemon.cli("list-sas", "--json"))
        out = daemon.cli("reassess", "--ike", "rw")
        assert "re-authentication requested: rw #" in out
        deadline = time.monotonic() + 30
        sas: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            sas = json.loads(daemon.cli("list-sas", "--json"))
            if [s["uniqueid"] for s in sas if s["state"] == "ESTABLISHED"] == [
                before["uniqueid"] + 1
            ]:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"no re-authentication: {sas}\n{a.log_tail(60)}")
        assert sas[0]["remote_vips"] == [vip] and sas[0]["children"]
        assert vip_of(a) == vip
        assert "reauth" in a.log_tail(200).lower()
    except BaseException:
        print(daemon.log()[-6000:])
        raise
    finally:
        daemon.stop()
