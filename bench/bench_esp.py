"""Userspace ESP throughput and CPU per GB, ours against strongSwan's kernel-libipsec (issue 7).

Both run in the same kind of setup: two namespaces joined by a veth pair (192.0.2.1 and
192.0.2.2), a TCP bulk transfer from 10.1.0.1 (on the gateway's loopback) to the client's
inner address through the tunnel, UDP-encapsulated ESP on port 4500, AES-128-GCM.

* ours: two ``python -m gateway.dataplane.userspace`` processes (TUN + EspEngine) with
  manually keyed SAs (``tests/gateway/dataplane/netns_pair.py``);
* reference: two Debian charons with kernel-libipsec (PSK, the client takes a virtual IP),
  the same esp_proposals.

Reported per side: Mbit/s of TCP payload, ESP packets per second (both directions, counted by
the dataplane), and CPU seconds per GB of payload (utime + stime of both dataplane processes
from ``/proc/PID/stat``; for charon that includes its IKE threads, which are idle during the
transfer).  Then the ratios ours / charon.

Run as root: ``python bench/bench_esp.py [megabytes]`` (default 50).  Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import Better, Figure, Result, SkipBenchmark, charon_version, progress  # noqa: E402
from tests.gateway.dataplane.esp_helpers import GCM128, stats  # noqa: E402
from tests.gateway.dataplane.netns_pair import (  # noqa: E402
    GW_INNER,
    start_pair,
    stop_pair,
    tcp_transfer,
)
from tests.harness.charon import Charon  # noqa: E402
from tests.harness.netns import NetnsFactory  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PSK = "bench-psk-0123456789abcdef0123"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _packets_out(control: object) -> int:
    value = stats(control)["packets_out"]
    assert isinstance(value, int)
    return value


def bench_ours(mb: int, workdir: Path) -> dict[str, Any]:
    with NetnsFactory() as netns:
        pair = start_pair(netns, workdir / "ours", GCM128)
        pids = [pair.gw.proc.pid, pair.cl.proc.pid]
        before = [cpu_seconds(p) for p in pids]
        p0 = _packets_out(pair.gw.control) + _packets_out(pair.cl.control)
        t0 = time.monotonic()
        ds, dc, n, _ = tcp_transfer(pair.gw.ns, GW_INNER, pair.cl.ns, mb * 1024 * 1024)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - sum(before)
        p1 = _packets_out(pair.gw.control) + _packets_out(pair.cl.control)
        drops = stats(pair.cl.control)["drops"]
        stop_pair(pair)
    assert ds == dc and n == mb * 1024 * 1024, "checksum mismatch"
    return {"bytes": n, "wall": wall, "cpu": cpu, "packets": p1 - p0, "drops": drops}


GW_CONF = f"""\
connections {{
  rw {{
    pools = rw
    proposals = aes128-sha256-x25519
    local {{
      auth = psk
      id = gw.test
    }}
    remote {{
      auth = psk
      id = cl.test
    }}
    children {{
      net {{
        local_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
pools {{
  rw {{
    addrs = 10.3.0.0/28
  }}
}}
secrets {{
  ike-rw {{
    id-1 = cl.test
    id-2 = gw.test
    secret = "{PSK}"
  }}
}}
"""

CL_CONF = f"""\
connections {{
  home {{
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {{
      auth = psk
      id = cl.test
    }}
    remote {{
      auth = psk
      id = gw.test
    }}
    children {{
      home {{
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
secrets {{
  ike-home {{
    id-1 = cl.test
    id-2 = gw.test
    secret = "{PSK}"
  }}
}}
"""


def _charon_packets(c: Charon) -> int:
    total = 0
    for sa in c.list_sas():
        for child in sa.children:
            total += int(child.raw.get("packets-out", 0))
    return total


def bench_charon(mb: int, workdir: Path) -> dict[str, Any]:
    with NetnsFactory() as netns:
        gw_ns, cl_ns = netns.namespace("bgw"), netns.namespace("bcl")
        netns.veth(gw_ns, cl_ns, "192.0.2.1/24", "192.0.2.2/24")
        gw_ns.run("ip", "addr", "add", f"{GW_INNER}/32", "dev", "lo")
        gw_ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        gw = Charon(gw_ns, workdir / "cgw")
        cl = Charon(cl_ns, workdir / "ccl")
        try:
            gw.start()
            cl.start()
            gw.write_swanctl_conf(GW_CONF)
            cl.write_swanctl_conf(CL_CONF)
            gw.load_all()
            cl.load_all()
            cl.initiate("home")
            time.sleep(0.5)
            pids = [gw._proc.pid, cl._proc.pid]  # type: ignore[union-attr]
            before = [cpu_seconds(p) for p in pids]
            p0 = _charon_packets(gw) + _charon_packets(cl)
            t0 = time.monotonic()
            ds, dc, n, _ = tcp_transfer(gw_ns, GW_INNER, cl_ns, mb * 1024 * 1024)
            wall = time.monotonic() - t0
            cpu = sum(cpu_seconds(p) for p in pids) - sum(before)
            p1 = _charon_packets(gw) + _charon_packets(cl)
        finally:
            cl.stop()
            gw.stop()
    assert ds == dc and n == mb * 1024 * 1024, "checksum mismatch"
    return {"bytes": n, "wall": wall, "cpu": cpu, "packets": p1 - p0, "drops": {}}


def run(mb: int, say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """(ours, charon's or None, why charon's is missing)."""
    with tempfile.TemporaryDirectory(prefix="bench-esp-") as tmp:
        work = Path(tmp)
        say(f"ours: {mb} MB TCP through the userspace dataplane")
        ours = bench_ours(mb, work)
        try:
            say(f"charon kernel-libipsec: {mb} MB TCP")
            return ours, bench_charon(mb, work), ""
        except Exception as exc:
            return ours, None, f"charon reference not measured: {exc}"


def figures(r: dict[str, Any]) -> tuple[float, float, float]:
    """(Mbit/s, packets/s, CPU seconds per GB) of one run."""
    return (
        r["bytes"] * 8 / r["wall"] / 1e6,
        r["packets"] / r["wall"],
        r["cpu"] / (r["bytes"] / 1e9),
    )


def collect(quick: bool) -> list[Result]:
    """Throughput, ESP packets/s and CPU per GB, ours beside charon kernel-libipsec's."""
    if os.geteuid() != 0:
        raise SkipBenchmark("needs root (network namespaces, TUN)")
    mb = 10 if quick else 50
    ours, ref, why = run(mb, progress)
    bad = {k: v for k, v in ours["drops"].items() if v and k != "no_policy"}
    note = f"{mb} MB TCP, AES-128-GCM" + (f", our drops {bad}" if bad else "")
    if ref is None:
        note += f"; {why}"
    name = f"{charon_version() or 'strongSwan'} kernel-libipsec"
    mine = figures(ours)
    theirs: tuple[float | None, ...] = figures(ref) if ref else (None, None, None)
    labels: tuple[tuple[str, str, Better], ...] = (
        ("throughput", "Mbit/s", "higher"),
        ("ESP packets/s", "packets/s", "higher"),
        ("CPU per GB of payload", "CPU s/GB", "lower"),
    )
    return [
        Figure(
            "esp",
            label,
            unit,
            value,
            reference,
            name if reference is not None else None,
            better,
            note,
        )
        for (label, unit, better), value, reference in zip(labels, mine, theirs, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_esp")
    parser.add_argument("megabytes", nargs="?", type=int, default=50)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_esp needs root (network namespaces, TUN)", file=sys.stderr)
        return 2
    console = Console()
    ours, ref, why = run(args.megabytes, lambda _: None)
    if ref is None:
        console.print(f"[yellow]{why}[/]")
    table = Table(title=f"ESP over UDP 4500, AES-128-GCM, {args.megabytes} MB TCP")
    for col in ("dataplane", "Mbit/s", "packets/s", "CPU s per GB", "seconds"):
        table.add_column(col, justify="right")
    rows = [("ours (userspace, Python)", ours)] + ([("charon kernel-libipsec", ref)] if ref else [])
    for name, r in rows:
        mbit, pps, cpu_gb = figures(r)
        table.add_row(name, f"{mbit:.0f}", f"{pps:.0f}", f"{cpu_gb:.1f}", f"{r['wall']:.2f}")
    console.print(table)
    if ref:
        console.print(
            f"ours / charon: throughput {ref['wall'] / ours['wall']:.2f}x, "
            f"CPU per GB {(ours['cpu'] / ours['bytes']) / (ref['cpu'] / ref['bytes']):.2f}x"
        )
    bad = {k: v for k, v in ours["drops"].items() if v and k != "no_policy"}
    if bad:
        console.print(f"[yellow]our drops during the run: {bad}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
