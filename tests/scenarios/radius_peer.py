"""An 802.1X supplicant for the scenarios: the project's EAP peer (EAP-TTLS or PEAP with
PT-EAP and the collectors of a profile inside) talking RADIUS to a server, like eapol_test
would if it could do PT-EAP.  Run as a script (in the gateway's namespace); prints JSON:

    {"code": "Access-Accept", "tunnel_private_group_id": "99", "filter_id": "quarantine",
     "tunnel_type": 13, "tunnel_medium_type": 6, "mppe": true, "pb_errors": [...]}

``--fault version`` sends the first PB-TNC batch with version 3; ``--fault noskip`` adds a
PB-TNC message of an unknown IETF type with NOSKIP set to it (RFC 5793 4.1 / 4.3).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.endpoint import load_profile
from ike.eap.packet import EapRequest, EapType
from ike.eap.peer import EapPeer
from nea.imc import build_collectors
from nea.pb_tnc import PbTncConfig, Tncc
from nea.pb_tnc.batch import decode_batch
from nea.pb_tnc.messages import PbError
from tests.ike.eap_tls.radius_loop import RadiusEapClient

__all__ = ["FaultyTncc", "main"]

ACCEPT, REJECT, CHALLENGE = 2, 3, 11
EAP_MESSAGE, FILTER_ID, TUNNEL_TYPE, TUNNEL_MEDIUM, TUNNEL_GROUP = 79, 11, 64, 65, 81
UNKNOWN_IETF_TYPE = 0xFE
"""A PB-TNC message type no IETF registry entry uses (RFC 5793 6.3 lists 0-8)."""


class FaultyTncc(Tncc):
    """A TNCC whose first batch is broken on purpose; records the PB-Errors it gets back."""

    def __init__(self, *args: Any, fault: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault
        self.pb_errors: list[str] = []

    def _mangle(self, batches: list[bytes]) -> list[bytes]:
        if self.fault is None or not batches:
            return batches
        first = bytearray(batches[0])
        if self.fault == "version":
            first[0] = 3
        elif self.fault == "noskip":
            extra = bytes([0x80]) + (0).to_bytes(3, "big") + UNKNOWN_IETF_TYPE.to_bytes(4, "big")
            extra += (12).to_bytes(4, "big")
            first += extra
            first[4:8] = len(first).to_bytes(4, "big")
        self.fault = None
        return [bytes(first), *batches[1:]]

    def start(self) -> list[bytes]:
        return self._mangle(super().start())

    def receive_batch(self, data: bytes) -> list[bytes]:
        try:
            batch = decode_batch(data)
        except Exception:
            batch = None
        if batch is not None:
            for m in batch.messages:
                if isinstance(m, PbError):
                    self.pb_errors.append(_error_name(m.error_code))
        return self._mangle(super().receive_batch(data))


def _error_name(code: int) -> str:
    from nea.pb_tnc.errors import PbErrorCode

    try:
        return PbErrorCode(code).name
    except ValueError:
        return str(code)


def _tunnel_int(value: bytes) -> int:
    return int.from_bytes(value[1:4], "big")


def _tunnel_text(value: bytes) -> str:
    if value and value[0] <= 0x1F:
        value = value[1:]
    return value.decode()


def run(args: argparse.Namespace) -> dict[str, Any]:
    facts = load_profile(args.profile)
    user = args.user.encode()
    tnccs: list[FaultyTncc] = []

    def pt_eap() -> Any:
        from nea.pt_eap import PtEapPeer

        tncc = FaultyTncc(build_collectors(facts), connection_id=1,
                          config=PbTncConfig.for_pt_eap(), fault=args.fault)
        tnccs.append(tncc)
        return PtEapPeer(tncc)

    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap_tls.tls import TlsPeerConfig

    inner = ((EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(user, args.password)),
             (EapType.PT_EAP, pt_eap))
    tls = TlsPeerConfig(ca_pems=(Path(args.ca).read_bytes(),), server_name=args.server_name)
    methods: list[tuple[int, Any]]
    if args.method == "ttls":
        from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig

        ttls = TtlsPeerConfig(tls=tls, identity=user, inner=InnerAuth.EAP,
                              password=args.password, eap_methods=inner)
        methods = [(EapType.TTLS, lambda: EapTtlsPeer(ttls))]
    else:
        from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig

        peap = PeapPeerConfig(tls=tls, identity=user, eap_methods=inner)
        methods = [(EapType.PEAP, lambda: EapPeapPeer(peap))]
    peer = EapPeer(user, methods)
    client = RadiusEapClient(args.port, args.secret)
    try:
        eap = peer.receive(EapRequest(0, EapType.IDENTITY).to_bytes())
        for _ in range(60):
            if eap is None:
                raise SystemExit(f"peer stopped answering: {peer.failure_reason}")
            code, attrs = client.exchange(user, eap)
            eap_in = b"".join(v for k, v in attrs if k == EAP_MESSAGE)
            if code == CHALLENGE:
                eap = peer.receive(eap_in)
                continue
            if eap_in:
                peer.receive(eap_in)
            values = dict(attrs)
            return {
                "code": {ACCEPT: "Access-Accept", REJECT: "Access-Reject"}.get(code, str(code)),
                "tunnel_type": _tunnel_int(values[TUNNEL_TYPE]) if TUNNEL_TYPE in values
                else None,
                "tunnel_medium_type": _tunnel_int(values[TUNNEL_MEDIUM])
                if TUNNEL_MEDIUM in values else None,
                "tunnel_private_group_id": _tunnel_text(values[TUNNEL_GROUP])
                if TUNNEL_GROUP in values else None,
                "filter_id": values[FILTER_ID].decode() if FILTER_ID in values else None,
                "mppe": client.mppe_keys(attrs) is not None,
                "pb_errors": [e for t in tnccs for e in t.pb_errors],
                "peer_failure": peer.failure_reason,
            }
        raise SystemExit("no final RADIUS answer")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--server-name", default="gw.test")
    p.add_argument("--user", required=True)
    p.add_argument("--password", default="scenario-pw")
    p.add_argument("--method", choices=("ttls", "peap"), default="ttls")
    p.add_argument("--profile", required=True)
    p.add_argument("--fault", choices=("version", "noskip"))
    args = p.parse_args(argv)
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
