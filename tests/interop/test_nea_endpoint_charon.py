"""nea-endpoint (subprocess, in its own namespace) against Debian's charon as the responder:
IKE certificates, EAP-TLS and EAP-TTLS (inner EAP-MD5).  charon cannot run PB-TNC (Debian
builds no tnccs-20), so the endpoint runs with --no-posture; the verdict is "not assessed"
and the exit status 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

GW_CONF = """\
connections {
  rw {
    pools = rw_pool
    local {
      auth = pubkey
      id = gw.test
      certs = %(cert)s
    }
    remote {
%(remote)s
    }
    children {
      net {
        local_ts = 10.1.0.0/16
      }
    }
  }
}
pools {
  rw_pool {
    addrs = 10.3.7.0/28
  }
}
secrets {
  eap-bob {
    id = bob
    secret = "hello"
  }
}
"""

REMOTE = {
    "pubkey": "      auth = pubkey\n      id = alice@example.test",
    "eap-tls": "      auth = eap-tls\n      eap_id = %any",
    "eap-ttls": "      auth = eap-ttls\n      eap_id = %any",
}


@pytest.mark.parametrize("auth", ["pubkey", "eap-tls", "eap-ttls"])
def test_nea_endpoint_to_charon(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, auth: str
) -> None:
    gw, cl = netns.namespace("gw"), netns.namespace("cl")
    netns.veth(gw, cl, "192.0.2.1/24", "192.0.2.2/24")
    gw.run("ip", "addr", "add", "10.1.0.1/16", "dev", "lo")
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    alice = cert_factory.issue(
        root, "alice", san_email=("alice@example.test",), eku=("clientAuth",)
    )
    charon = charon_factory(gw, "gw")
    charon.add_ca(root)
    charon.add_cert(gw_cert)
    charon.write_swanctl_conf(GW_CONF % {"cert": f"{gw_cert.name}.pem", "remote": REMOTE[auth]})
    charon.load_all()

    args = [
        "--server",
        "192.0.2.1",
        "--ca",
        str(root.cert_path),
        "--server-id",
        "gw.test",
        "--no-posture",
        "--once",
        "--json",
        "--timeout",
        "20",
        "-v",
    ]
    if auth == "pubkey":
        args += [
            "--eap",
            "none",
            "--id",
            "alice@example.test",
            "--cert",
            str(alice.cert_path),
            "--key",
            str(alice.key_path),
        ]
    elif auth == "eap-tls":
        args += [
            "--eap",
            "eap-tls",
            "--id",
            "alice@example.test",
            "--cert",
            str(alice.cert_path),
            "--key",
            str(alice.key_path),
        ]
    else:
        args += ["--eap", "eap-ttls", "--id", "bob", "--password", "hello", "--inner", "md5"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        cl.cmd(sys.executable, "-m", "gateway.nea_endpoint", *args),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    print(r.stderr[-6000:])
    assert r.stdout, r.stderr
    res = json.loads(r.stdout)
    assert (r.returncode, res["outcome"], res["verdict"]) == (0, "allow", "not assessed"), (
        res,
        r.stderr[-4000:],
        charon.log()[-3000:],
    )
    (vip,) = res["virtual_ips"]
    assert vip.startswith("10.3.7.")
    (child,) = res["children"]
    assert child["remote_ts"] == ["10.1.0.0/16"] and child["local_ts"] == [f"{vip}/32"]
    assert res["ike"]["remote_id"] == "gw.test"
    log = charon.log()
    if auth == "pubkey":
        assert "authentication of 'alice@example.test' with" in log
    else:
        assert f"EAP method EAP_{auth.removeprefix('eap-').upper()} succeeded" in log
    # --once deleted the IKE_SA: charon has none left.
    charon.wait_for(lambda sas: not sas)
