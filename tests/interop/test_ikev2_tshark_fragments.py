"""RFC 7383 fragmentation with an RSA-4096 chain, checked by tshark with our IKE SA keys.

charon (client, kernel-libipsec) and our responder both certify with RSA-4096 end-entity
certificates under an RSA-4096 intermediate under an RSA-4096 root; each sends its chain as
CERT payloads, so IKE_AUTH is far larger than ``fragment_size`` both ways and travels as SKF
payloads.  The capture must then decode in tshark with the decryption table filled from our
responder's ``debug_key_log`` (SPIs, SK_e, SK_a): no malformed packet, no expert error, and
the decrypted IKE_AUTH shows IDi/IDr/AUTH/SA/TSi/TSr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.netns import Netns
from tests.harness.tools import require
from tests.harness.tshark import Capture, problems, read_fields
from tests.interop.test_charon_ikev2_psk import (
    CLIENT_CONF,
    PSK,
    REPO,
    Responder,
    _check,
    _setup,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]

# Wireshark's value_string names (packet-isakmp.c, vs_ikev2_encr_algs / vs_ikev2_auth_algs),
# which the ikev2_decryption_table UAT stores.  Keyed by (IANA transform ID, key bits).
_TSHARK_ENCR = {
    (12, 128): "AES-CBC-128 [RFC3602]",
    (12, 192): "AES-CBC-192 [RFC3602]",
    (12, 256): "AES-CBC-256 [RFC3602]",
    (20, 128): "AES-GCM-128 with 16 octet ICV [RFC5282]",
    (20, 256): "AES-GCM-256 with 16 octet ICV [RFC5282]",
}
_TSHARK_INTEG = {
    0: "NONE [RFC4306]",
    2: "HMAC_SHA1_96 [RFC2404]",
    12: "HMAC_SHA2_256_128 [RFC4868]",
    13: "HMAC_SHA2_384_192 [RFC4868]",
    14: "HMAC_SHA2_512_256 [RFC4868]",
}

# IKEv2 payload types (RFC 7296, 3.2; RFC 7383, 2.5)
SKF = 53
CERT = 37
AUTH = "isakmp.exchangetype == 35"
IKE_AUTH_PAYLOADS = {"IDi": 35, "IDr": 36, "AUTH": 39, "SA": 33, "TSi": 44, "TSr": 45}


class ResponderWith(Responder):
    """:class:`Responder` with extra keys in its JSON config (``stats``, ``debug_key_log``,
    ``keepalive_interval``, ``fragment_size``)."""

    def __init__(
        self,
        ns: Netns,
        workdir: Path,
        connections: list[dict[str, Any]],
        listen: str = "192.0.2.1",
        **extra: Any,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.events_path = workdir / "events.jsonl"
        self.log_path = workdir / "responder.log"
        self.stats_path = workdir / "stats.json"
        self.config = workdir / "ike.json"
        spec = {
            "listen": listen,
            "events": str(self.events_path),
            "connections": connections,
            "stats": str(self.stats_path),
            **extra,
        }
        self.config.write_text(json.dumps(spec))
        self._log = self.log_path.open("ab")
        self.proc = ns.popen(
            sys.executable,
            "-m",
            "gateway.ike_udp",
            "--debug",
            "--config",
            str(self.config),
            cwd=str(REPO),
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while "IKE listening" not in self.log() or not self.stats_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"responder did not start:\n{self.log()}")
            time.sleep(0.05)

    def wait_event(self, name: str, count: int = 1, timeout: float = 10) -> dict[str, Any]:
        """The first ``name`` event once ``count`` of them are written (the responder sends
        its answer before it hands the events on, so charon can be done first)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events() if e["event"] == name]
            if len(found) >= count:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} {name} events: {self.events()}")
            time.sleep(0.05)

    def stats(self) -> dict[str, int]:
        """The counters as last written (the responder rewrites them within 0.2 s)."""
        time.sleep(0.5)
        data: dict[str, int] = json.loads(self.stats_path.read_text())
        return data


def decryption_prefs(key_log: Path) -> dict[str, str]:
    """``-o uat:ikev2_decryption_table:...`` for every IKE_SA in our responder's key log."""
    rows = []
    for line in key_log.read_text().splitlines():
        k = json.loads(line)
        fields = [
            k["spi_i"],
            k["spi_r"],
            k["sk_ei"],
            k["sk_er"],
            _TSHARK_ENCR[(k["encr"], k["encr_bits"])],
            k["sk_ai"],
            k["sk_ar"],
            _TSHARK_INTEG[k["integ"]],
        ]
        # UAT record syntax: octet strings as bare hex, value_string names quoted
        rows.append(",".join(f if i not in (4, 7) else f'"{f}"' for i, f in enumerate(fields)))
    assert rows, "the responder logged no keys"
    # tshark takes one record per -o; several IKE_SAs need several options: join with the
    # same key is impossible in a dict, so only single-SA captures use this helper.
    assert len(rows) == 1, rows
    return {"uat:ikev2_decryption_table": rows[0]}


def interface_with(ns: Any, address: str) -> str:
    out = ns.run("ip", "-o", "-4", "addr", "show").stdout
    return str(next(line.split()[1] for line in out.splitlines() if f" {address}/" in line))


def _chain(cert_factory: Any, tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    root = cert_factory.ca("root", key_type="rsa", rsa_bits=4096)
    sub = cert_factory.ca("sub", key_type="rsa", rsa_bits=4096, parent=root)
    gw_cert = cert_factory.issue(
        sub, "gw.test", san_dns=("gw.test",), key_type="rsa", rsa_bits=4096
    )
    cl_cert = cert_factory.issue(
        sub, "cl.test", san_dns=("cl.test",), key_type="rsa", rsa_bits=4096
    )
    return root, sub, gw_cert, cl_cert


def test_rsa4096_chain_fragments_and_decrypts(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    require("tshark")
    root, sub, gw_cert, cl_cert = _chain(cert_factory, tmp_path)
    gw, cl = _setup(netns)
    (tmp_path / "root.pem").write_bytes(root.cert_pem)
    (tmp_path / "sub.pem").write_bytes(sub.cert_pem)
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "remote_id": "cl.test",
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "intermediates": [str(tmp_path / "sub.pem")],
        "cacerts": [str(tmp_path / "root.pem")],
        "pool": "10.3.0.0/28",
        "proposals": ["aes128-sha256-x25519"],
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    key_log = tmp_path / "ours" / "keys.jsonl"
    pcap = tmp_path / "frag.pcapng"
    with Capture(gw, interface_with(gw, "192.0.2.1"), pcap, capture_filter="udp", settle=2):
        responder = ResponderWith(
            gw, tmp_path / "ours", [conn], fragment_size=1000, debug_key_log=str(key_log)
        )
        try:
            charon = charon_factory(cl, "cl", charon_options="  fragment_size = 1000")
            charon.add_ca(root)
            charon.add_cert(cl_cert)
            charon.write_swanctl_conf(
                CLIENT_CONF
                % {
                    "proposals": "aes128-sha256-x25519",
                    "esp": "aes128gcm16",
                    "auth": "pubkey",
                    "rauth": "pubkey",
                    "cl_id": "cl.test",
                    "local_extra": f"      certs = {cl_cert.name}.pem",
                    "psk": PSK,
                }
            )
            charon.load_all()
            charon.initiate("home")
            responder.wait_event("ChildSaInstalled")
            _check(charon, responder, "10.3.0.")
            log = charon.log()
            # charon got our chain (end entity + intermediate) and split its own message
            assert "received end entity cert" in log and "received issuer cert" in log, log
            assert "sending issuer cert" in log, log
            assert "splitting IKE message" in log and "reassembled fragmented IKE message" in log
            charon.terminate(ike="home")
            charon.wait_for(lambda sas: not sas)
        except BaseException:
            print(responder.log()[-6000:])
            raise
        finally:
            responder.stop()
    prefs = decryption_prefs(key_log)
    assert problems(pcap, prefs=prefs) == []
    assert problems(pcap) == []  # and without keys (encrypted payloads left opaque)
    # every IKE_AUTH datagram is an SKF fragment, from both sides (I flag 1 = charon)
    raw = read_fields(pcap, ["isakmp.flag_i", "isakmp.typepayload"], display_filter=AUTH)
    assert {r[0] for r in raw} == {"1", "0"} and all(r[1] == str(SKF) for r in raw), raw
    assert len(raw) >= 4, raw
    # decrypted and reassembled, the last fragment of each side carries the whole IKE_AUTH
    rows = read_fields(
        pcap,
        ["isakmp.flag_i", "isakmp.typepayload", "isakmp.id.data.fqdn"],
        display_filter=AUTH + " && isakmp.frag.number == isakmp.frag.total",
        prefs=prefs,
    )
    by_side = {r[0]: ([int(t) for t in r[1].split(",")], r[2].split(",")) for r in rows}
    assert set(by_side) == {"1", "0"}, rows
    request, req_ids = by_side["1"]
    response, resp_ids = by_side["0"]
    for name in ("IDi", "IDr", "AUTH", "SA", "TSi", "TSr"):
        assert IKE_AUTH_PAYLOADS[name] in request, (name, request)
    for name in ("IDr", "AUTH", "SA", "TSi", "TSr"):
        assert IKE_AUTH_PAYLOADS[name] in response, (name, response)
    assert request.count(CERT) == 2 and response.count(CERT) == 2  # end entity + intermediate
    assert req_ids == ["cl.test", "gw.test"] and resp_ids == ["gw.test"]
