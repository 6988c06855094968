"""IKEv2 responder side by side with charon under the same initiator load (issue 6).

Two network namespaces joined by a veth: the responder in ``gw`` (192.0.2.1), the load in
``cl`` (192.0.2.2).  The load is our own :class:`ike.sa.IkeEngine` as initiator in a separate
process (``python bench/bench_ike.py --drive``, Twisted, :class:`gateway.ike_udp.IkeUdpService`)
that keeps ``window`` IKE_SAs in flight until ``n`` are established.  The same load runs
against (a) our responder, ``python -m gateway.ike_udp`` (INFO logging, no dataplane), and
(b) Debian's charon 5.9.8 configured alike (same proposals aes128-sha256-x25519 and ESP
aes128-sha256, same ECDSA P-256 gateway certificate, PSK and EAP-TLS connections, TLS 1.2,
no virtual IPs, ``unique = never``; ``ikesa_table_size = 4096`` and no cookie/block
thresholds so that 10,000 SAs are not a hash-chain walk; per-SA log subsystems at level 0;
CHILD_SAs installed into kernel-libipsec, its userspace ESP, since this kernel has no ESP --
a little more work than ours, which installs nothing).

Figures, per responder:

* CPU per IKE_SA (PSK, and EAP-TLS with client and server certificates): responder process
  CPU (utime + stime of all threads, ``/proc/PID/stat``) over the run / SAs established.
* establishment rate at saturation: PSK with 32 in flight, SAs per second of wall time, and
  how busy the responder was (CPU seconds per wall second; 1.0 = one core, the machine has
  two and the initiator needs one, so a responder well below 1.0 was not the bottleneck).
* memory per established IKE_SA: responder RSS growth over ``--sas`` (default 10,000) more
  established PSK IKE_SAs, divided by their number.

Needs root (namespaces) and charon (Debian ``strongswan-charon``); ``--only ours`` skips
charon.  Run: ``sudo .venv/bin/python bench/bench_ike.py [--sas 10000]``; a few minutes.
Not part of the tests.

``python -m bench`` calls :func:`collect` instead (each responder in fresh namespaces;
``--quick``: 1,000 SAs for the memory figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GW, CL = "192.0.2.1", "192.0.2.2"
PSK = "bench-shared-secret-0123456789"
PROPOSAL = "aes128-sha256-x25519"
ESP = "aes128-sha256"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# The load: our IkeEngine as initiator (runs in the client namespace)


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Establish ``spec["n"]`` IKE_SAs, ``spec["window"]`` at a time; report counts and times."""
    from cryptography import x509
    from twisted.internet import reactor as _reactor

    from gateway.ike_udp import IkeUdpService
    from ike.config import AuthClass, ChildConfig, EngineConfig, Identity, IkeProposal, PeerConfig
    from ike.sa import Event, IkeEngine, IkeSaClosed, IkeSaEstablished

    reactor: Any = _reactor
    common: dict[str, Any] = {
        "children": (ChildConfig.make("home", remote_ts=["10.1.0.0/16"], esp_proposals=[ESP]),),
        "ike_proposals": (IkeProposal.parse(PROPOSAL),),
        "remote_id": Identity.parse("gw.test"),
    }
    if spec["mode"] == "psk":
        peer = PeerConfig(
            name="home",
            local_id=Identity.parse("psk.test"),
            local_auth=AuthClass.PSK,
            remote_auth=AuthClass.PSK,
            psk=PSK.encode(),
            **common,
        )
    else:
        from OpenSSL import SSL

        from ike.eap.packet import EapType
        from ike.eap.peer import EapPeer
        from ike.eap_tls.method import EapTlsPeer
        from ike.eap_tls.tls import TlsPeerConfig, TlsVersion

        ca_pem = Path(spec["ca"]).read_bytes()
        tls = TlsPeerConfig(
            ca_pems=(ca_pem,),
            cert_chain_pem=Path(spec["cert"]).read_bytes(),
            key_pem=Path(spec["key"]).read_bytes(),
            server_name="gw.test",
            max_version=TlsVersion.TLS1_2,
        )
        # charon's libtls sends no renegotiation_info (as gateway.nea_endpoint notes)
        tls.context().set_options(SSL.OP_LEGACY_SERVER_CONNECT)
        ident = b"tls.test"
        peer = PeerConfig(
            name="home",
            local_id=Identity.parse("tls.test"),
            local_auth=AuthClass.EAP,
            remote_auth=AuthClass.PUBKEY,
            trust_anchors=(x509.load_pem_x509_certificate(ca_pem),),
            eap_peer=lambda: EapPeer(ident, [(EapType.TLS, lambda: EapTlsPeer(tls))]),
            **common,
        )
    engine = IkeEngine(EngineConfig(peers=(peer,)))
    n, window = int(spec["n"]), int(spec["window"])
    state = {"started": 0, "ok": 0, "failed": 0}
    pending: set[bytes] = set()
    times: dict[str, float] = {}

    def start_one() -> None:
        pending.add(service.initiate("home", (GW, 500)))

    def on_event(event: Event) -> None:
        if isinstance(event, IkeSaEstablished) and event.ike_sa in pending:
            pending.discard(event.ike_sa)
            state["ok"] += 1
        elif isinstance(event, IkeSaClosed) and event.ike_sa in pending:
            pending.discard(event.ike_sa)
            state["failed"] += 1
        else:
            return
        if state["ok"] + state["failed"] >= n:
            times["end"] = time.monotonic()
            reactor.callLater(0, reactor.stop)
        elif state["started"] < n:
            state["started"] += 1
            reactor.callLater(0, start_one)

    service = IkeUdpService(engine, reactor, CL, on_event)
    for port, proto in service.ports.items():
        reactor.listenUDP(port, proto, interface=CL)

    def begin() -> None:
        times["start"] = time.monotonic()
        for _ in range(min(window, n)):
            state["started"] += 1
            start_one()

    reactor.callWhenRunning(begin)
    reactor.callLater(float(spec.get("timeout", 600)), reactor.stop)
    reactor.run()
    end = times.get("end", time.monotonic())
    return {
        "ok": state["ok"],
        "failed": state["failed"],
        "wall": end - times["start"],
        "initiator_cpu": os.times().user + os.times().system,
    }


# --------------------------------------------------------------------------------------------
# The responders


def proc_cpu(pid: int) -> float:
    """utime + stime of the process and all its threads, ended ones included, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss(pid: int) -> int:
    """Resident set size in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Pki:
    ca: Path
    gw_cert: Path
    gw_key: Path
    cl_cert: Path
    cl_key: Path
    issued: dict[str, Any]


def make_pki(directory: Path) -> Pki:
    from tests.harness.certs import CertFactory

    f = CertFactory(directory)
    ca = f.ca("ca")
    gw = f.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    cl = f.issue(ca, "tls.test", san_dns=("tls.test",), eku=("clientAuth",))
    ca_path = directory / "ca-root.pem"
    ca_path.write_bytes(ca.cert_pem)
    return Pki(ca_path, gw.cert_path, gw.key_path, cl.cert_path, cl.key_path, {"ca": ca, "gw": gw})


class OurResponder:
    name = "nea-gateway"

    def __init__(self, ns: Any, workdir: Path, pki: Pki) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        child = {"name": "net", "local_ts": ["10.1.0.0/16"], "esp_proposals": [ESP]}
        spec = {
            "listen": GW,
            "cookie_threshold": 1_000_000,
            "connections": [
                {
                    "name": "psk",
                    "local_id": "gw.test",
                    "remote_id": "psk.test",
                    "psk": PSK,
                    "proposals": [PROPOSAL],
                    "children": [child],
                },
                {
                    "name": "tls",
                    "local_id": "gw.test",
                    "remote_id": "tls.test",
                    "local_auth": "pubkey",
                    "remote_auth": "eap",
                    "cert": str(pki.gw_cert),
                    "key": str(pki.gw_key),
                    "proposals": [PROPOSAL],
                    "eap": {
                        "methods": ["tls"],
                        "tls": {"cert": str(pki.gw_cert), "key": str(pki.gw_key),
                                "ca": [str(pki.ca)]},
                    },
                    "children": [child],
                },
            ],
        }  # fmt: skip
        config = workdir / "ike.json"
        config.write_text(json.dumps(spec))
        self.log_path = workdir / "responder.log"
        self._log = self.log_path.open("ab")
        self.proc = ns.popen(
            sys.executable, "-m", "gateway.ike_udp", "--config", str(config),
            cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while "IKE listening" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()


CHARON_CONF = f"""\
connections {{
  psk {{
    proposals = {PROPOSAL}
    unique = never
    local {{
      auth = psk
      id = gw.test
    }}
    remote {{
      auth = psk
      id = psk.test
    }}
    children {{
      net {{
        local_ts = 10.1.0.0/16
        esp_proposals = {ESP}
      }}
    }}
  }}
  tls {{
    proposals = {PROPOSAL}
    unique = never
    local {{
      auth = pubkey
      id = gw.test
      certs = gw.test.pem
    }}
    remote {{
      auth = eap-tls
      id = tls.test
      eap_id = %any
    }}
    children {{
      net {{
        local_ts = 10.1.0.0/16
        esp_proposals = {ESP}
      }}
    }}
  }}
}}
secrets {{
  ike-psk {{
    id-1 = psk.test
    id-2 = gw.test
    secret = "{PSK}"
  }}
}}
"""

CHARON_OPTIONS = """\
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  cookie_threshold = 1000000
  block_threshold = 1000000
  init_limit_half_open = 0
  plugins {
    eap-tls {
      max_version = 1.2
    }
  }
"""


class CharonResponder:
    name = "charon 5.9.8"

    def __init__(self, ns: Any, workdir: Path, pki: Pki) -> None:
        from tests.harness.charon import Charon

        self.charon = Charon(
            ns,
            workdir,
            charon_options=CHARON_OPTIONS,
            # the harness reads the plugin list from the (lib, level 1) log; per-SA subsystems
            # at 0: about as much logging per SA as our INFO events
            log_levels={"default": 1, "ike": 0, "enc": 0, "net": 0, "cfg": 0, "chd": 0},
        )
        self.charon.add_ca(pki.issued["ca"])
        self.charon.add_cert(pki.issued["gw"])
        self.charon.write_swanctl_conf(CHARON_CONF)
        self.charon.start()
        self.charon.load_all()
        proc = self.charon._proc
        assert proc is not None
        self.pid = proc.pid

    def stop(self) -> None:
        self.charon.stop()


# --------------------------------------------------------------------------------------------
# The runs


@dataclass
class Run:
    ok: int
    failed: int
    wall: float
    cpu: float
    rss_before: int
    rss_after: int

    @property
    def cpu_per_sa(self) -> float:
        return self.cpu / max(1, self.ok)

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    @property
    def busy(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def run_load(cl: Any, pid: int, spec: dict[str, Any]) -> Run:
    rss0, cpu0 = proc_rss(pid), proc_cpu(pid)
    proc = subprocess.run(
        cl.cmd(sys.executable, str(Path(__file__).resolve()), "--drive", json.dumps(spec)),
        capture_output=True, text=True, timeout=float(spec.get("timeout", 600)) + 60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False,
    )  # fmt: skip
    cpu1 = proc_cpu(pid)
    time.sleep(0.5)  # let the responder finish the last exchange's bookkeeping
    rss1 = proc_rss(pid)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return Run(res["ok"], res["failed"], res["wall"], cpu1 - cpu0, rss0, rss1)


def measure(
    label: str, make: Callable[[], Any], cl: Any, pki: Pki, n_sas: int, say: Callable[[str], None]
) -> dict[str, Run]:
    responder = make()
    tls = {"ca": str(pki.ca), "cert": str(pki.cl_cert), "key": str(pki.cl_key)}
    runs: dict[str, Run] = {}
    try:
        plan = [
            ("warmup", {"mode": "psk", "n": 20, "window": 4}),
            ("psk", {"mode": "psk", "n": 300, "window": 8}),
            ("eap-tls", {"mode": "eap-tls", "n": 100, "window": 8, **tls}),
            ("saturation", {"mode": "psk", "n": 600, "window": 32}),
            ("memory", {"mode": "psk", "n": n_sas, "window": 32, "timeout": 900}),
        ]
        for name, spec in plan:
            run = run_load(cl, responder.pid, spec)
            runs[name] = run
            say(
                f"{label:>12} {name:<10} {run.ok:>6} ok {run.failed:>3} failed "
                f"{run.wall:7.1f} s wall {run.cpu:7.2f} s CPU "
                f"RSS {run.rss_before / 2**20:7.1f} -> {run.rss_after / 2**20:7.1f} MiB"
            )
    finally:
        responder.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ike")
    parser.add_argument("--sas", type=int, default=10_000, help="IKE_SAs for the memory figure")
    parser.add_argument("--only", choices=("ours", "charon"))
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive))), flush=True)
        return 0
    if os.geteuid() != 0:
        print("bench_ike: needs root for network namespaces; skipped")
        return 0
    if args.only != "ours" and not (
        shutil.which("charon") or Path("/usr/lib/ipsec/charon").exists()
    ):
        print("bench_ike: charon not installed (Debian strongswan-charon); use --only ours")
        return 0

    from rich.console import Console
    from rich.table import Table

    from tests.harness.netns import NetnsFactory

    console = Console(width=120)
    results: dict[str, dict[str, Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ike-") as tmp, NetnsFactory() as netns:
        work = Path(tmp)
        pki = make_pki(work / "pki")
        gw, cl = netns.namespace("bgw"), netns.namespace("bcl")
        netns.veth(gw, cl, f"{GW}/24", f"{CL}/24")
        makers: list[tuple[str, Callable[[], Any]]] = []
        if args.only != "charon":
            makers.append(("nea-gateway", lambda: OurResponder(gw, work / "ours", pki)))
        if args.only != "ours":
            makers.append(("charon", lambda: CharonResponder(gw, work / "charon", pki)))
        for label, make in makers:
            results[label] = measure(label, make, cl, pki, args.sas, console.print)

    table = Table(title=f"IKEv2 responder under the same load ({args.sas} SAs for memory)")
    table.add_column("figure")
    for label in results:
        table.add_column(label, justify="right")
    if len(results) == 2:
        table.add_column("ratio ours/charon", justify="right")

    def row(name: str, get: Callable[[dict[str, Run]], float], fmt: str) -> None:
        values = [get(r) for r in results.values()]
        cells = [fmt.format(v) for v in values]
        if len(values) == 2:
            cells.append(f"{values[0] / values[1]:.2f}" if values[1] else "-")
        table.add_row(name, *cells)

    row("CPU per IKE_SA, PSK (ms)", lambda r: r["psk"].cpu_per_sa * 1e3, "{:.2f}")
    row("CPU per IKE_SA, EAP-TLS (ms)", lambda r: r["eap-tls"].cpu_per_sa * 1e3, "{:.2f}")
    row("rate, PSK, 32 in flight (SA/s)", lambda r: r["saturation"].rate, "{:.0f}")
    row("  responder busy (CPU s / s)", lambda r: r["saturation"].busy, "{:.2f}")
    row("  one-core bound, PSK (1 / CPU per SA)", lambda r: 1 / r["psk"].cpu_per_sa, "{:.0f}")
    row("rate, EAP-TLS, 8 in flight (SA/s)", lambda r: r["eap-tls"].rate, "{:.0f}")
    row(
        "memory per IKE_SA (KiB)",
        lambda r: (r["memory"].rss_after - r["memory"].rss_before) / max(1, r["memory"].ok) / 1024,
        "{:.1f}",
    )
    row("  SAs established in that run", lambda r: r["memory"].ok, "{:.0f}")
    row("  RSS with all SAs (MiB)", lambda r: r["memory"].rss_after / 2**20, "{:.0f}")
    console.print(table)
    console.print(
        "A responder busy well below 1.0 was not the bottleneck: the initiator process was "
        "(one core each on this 2-core machine); the one-core bound is what its CPU per SA "
        "would allow."
    )
    failed = sum(r.failed for runs in results.values() for r in runs.values())
    if failed:
        console.print(f"[yellow]{failed} IKE_SAs failed to establish (see above)[/]")
    return 0


# -- the runner's figures (python -m bench) ---------------------------------------------------


def _measure_one(label: str, n_sas: int, say: Callable[[str], None]) -> dict[str, Run]:
    """One responder (``nea-gateway`` or ``charon``) under the whole load, in fresh namespaces."""
    from tests.harness.netns import NetnsFactory

    with tempfile.TemporaryDirectory(prefix="bench-ike-") as tmp, NetnsFactory() as netns:
        work = Path(tmp)
        pki = make_pki(work / "pki")
        gw, cl = netns.namespace("bgw"), netns.namespace("bcl")
        netns.veth(gw, cl, f"{GW}/24", f"{CL}/24")
        make: Callable[[], Any] = (
            (lambda: OurResponder(gw, work / "ours", pki))
            if label == "nea-gateway"
            else (lambda: CharonResponder(gw, work / "charon", pki))
        )
        return measure(label, make, cl, pki, n_sas, say)


def collect(quick: bool) -> list[Any]:
    """CPU per IKE_SA (PSK, EAP-TLS), rates and memory per IKE_SA, ours beside charon's."""
    from bench.common import Better, Figure, SkipBenchmark, charon_version, progress

    if os.geteuid() != 0:
        raise SkipBenchmark("needs root for network namespaces")
    n_sas = 1_000 if quick else 10_000
    ours = _measure_one("nea-gateway", n_sas, progress)
    charon_name = charon_version()
    theirs: dict[str, Run] | None = None
    why = "charon not installed (Debian strongswan-charon)"
    if charon_name is not None:
        try:
            theirs = _measure_one("charon", n_sas, progress)
        except Exception as exc:  # our figures stand without the reference
            first = (str(exc).strip().splitlines() or [repr(exc)])[0]
            why = f"charon not measured: {first}"
    specs: list[tuple[str, str, Better, Callable[[dict[str, Run]], float], str]] = [
        ("CPU per IKE_SA, PSK", "ms", "lower", lambda r: r["psk"].cpu_per_sa * 1e3,
         "300 SAs, 8 in flight"),
        ("CPU per IKE_SA, EAP-TLS", "ms", "lower", lambda r: r["eap-tls"].cpu_per_sa * 1e3,
         "100 SAs, 8 in flight"),
        ("rate, PSK, 32 in flight", "SA/s", "higher", lambda r: r["saturation"].rate,
         "600 SAs"),
        ("one-core bound, PSK (1 / CPU per SA)", "SA/s", "higher",
         lambda r: 1 / r["psk"].cpu_per_sa, ""),
        ("rate, EAP-TLS, 8 in flight", "SA/s", "higher", lambda r: r["eap-tls"].rate, ""),
        ("memory per IKE_SA", "KiB", "lower",
         lambda r: (r["memory"].rss_after - r["memory"].rss_before) / max(1, r["memory"].ok)
         / 1024, f"{n_sas:,} SAs"),
        ("RSS with all SAs", "MiB", "lower", lambda r: r["memory"].rss_after / 2**20,
         f"{n_sas:,} SAs"),
    ]  # fmt: skip
    failed = sum(run.failed for run in ours.values())
    failed_ref = sum(run.failed for run in theirs.values()) if theirs else 0
    results: list[Any] = []
    for name, unit, better, get, note in specs:
        notes = [n for n in (note, "" if theirs else why) if n]
        if failed or failed_ref:
            notes.append(f"IKE_SAs that failed: ours {failed}, charon {failed_ref}")
        results.append(
            Figure(
                "ike", name, unit, get(ours),
                get(theirs) if theirs else None,
                f"charon ({charon_name})" if theirs else None,
                better,
                "; ".join(notes),
            )
        )  # fmt: skip
    return results


if __name__ == "__main__":
    sys.exit(main())
