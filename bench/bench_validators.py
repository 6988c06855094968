"""Validator CPU time of one posture assessment.

One assessment = a fresh PB-TNC connection between our collectors (reporting an endpoint
profile or this host) and our validators enforcing ``examples/policy.toml``, run back to back
in memory. Only the server side is timed (``Tncs.receive_batch``: PB-TNC decoding, PA-TNC
decoding, policy evaluation, evidence records into a null sink), with ``time.process_time``
(CPU, not wall clock); the client side runs untimed between the server calls.

Cases: the compliant profile (4 packages), the forbidden-package profile (failures,
remediation) and this machine read by ``gateway.endpoint.read_host`` (every dpkg package,
checked against the package table and the UNSRC rule).

Run: ``python bench/bench_validators.py [assessments]`` (default 300). Not part of the tests.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import Figure, Result, progress  # noqa: E402
from gateway.endpoint import load_profile, read_host  # noqa: E402
from nea.imc import HostFacts, build_collectors  # noqa: E402
from nea.imv import NullEvidenceSink, PolicyEngine, PolicyValidator, build_validators  # noqa: E402
from nea.pb_tnc import PbTncConfig, Tncc, Tncs  # noqa: E402
from nea.policy import PolicyConfig, load_policy, parse_policy  # noqa: E402


def clock() -> dt.datetime:
    return dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def one(
    engine: PolicyEngine, validators: Sequence[PolicyValidator], facts: HostFacts, conn_id: int
) -> float:
    """Run one assessment; return the CPU seconds spent in the server."""
    tncc = Tncc(build_collectors(facts), connection_id=conn_id, config=PbTncConfig.for_pt_eap())
    engine.open_connection(conn_id, "bench@example.com")
    t0 = time.process_time()
    tncs = Tncs(validators, connection_id=conn_id, config=PbTncConfig.for_pt_eap())
    spent = time.process_time() - t0
    to_server = tncc.start()
    while to_server:
        to_client: list[bytes] = []
        for batch in to_server:
            t0 = time.process_time()
            to_client += tncs.receive_batch(batch)
            spent += time.process_time() - t0
        to_server = []
        for batch in to_client:
            to_server += tncc.receive_batch(batch)
    if tncs.decision is None:
        raise SystemExit("assessment did not finish")
    return spent


def run(policy: PolicyConfig, facts: HostFacts, n: int) -> tuple[float, float, int]:
    engine = PolicyEngine(policy, clock=clock, sink=NullEvidenceSink())
    validators = build_validators(engine)
    one(engine, validators, facts, 0)  # warm up
    times = sorted(one(engine, validators, facts, i + 1) for i in range(n))
    return sum(times) / n, times[n // 2], len(engine.connections)


def cases(n: int) -> list[tuple[str, PolicyConfig, HostFacts, int]]:
    """(name, policy, facts, assessments) for the two profiles and this host."""
    policy = load_policy(ROOT / "examples" / "policy.toml")
    host = read_host()
    # this host against its own OS with an UNSRC rule and a table of a few packages
    host_policy = parse_policy(
        (ROOT / "examples" / "policy.toml").read_text()
        + '\n[[enforcements]]\npolicy = "unknown-packages"\ngroup = "default"\n',
        "policy.toml+UNSRC",
    )
    return [
        ("compliant profile", policy, load_profile(ROOT / "examples/profiles/compliant.toml"), n),
        (
            "forbidden-package profile",
            policy,
            load_profile(ROOT / "examples/profiles/forbidden-package.toml"),
            n,
        ),
        (f"this host ({len(host.packages)} packages)", host_policy, host, max(n // 10, 5)),
    ]


def collect(quick: bool) -> list[Result]:
    """Mean and median server CPU ms per assessment of each case: the runner's figures."""
    results: list[Result] = []
    for name, pol, facts, count in cases(50 if quick else 300):
        progress(f"{name}: {count} assessments")
        mean, median, leaked = run(pol, facts, count)
        if leaked:
            raise RuntimeError(f"{leaked} connections left open in the engine")
        note = f"{count} assessments"
        results.append(Figure("validators", f"{name}, mean", "ms", mean * 1e3, note=note))
        results.append(Figure("validators", f"{name}, median", "ms", median * 1e3, note=note))
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 300
    table = Table(title="validator CPU time per assessment (server side, PT-EAP limits)")
    for col in ("case", "assessments", "mean", "median", "per second (1 core)"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, pol, facts, count in cases(n):
        mean, median, leaked = run(pol, facts, count)
        if leaked:
            print(f"warning: {leaked} connections left open in the engine", file=sys.stderr)
        table.add_row(
            name,
            str(count),
            f"{mean * 1e3:.2f} ms",
            f"{median * 1e3:.2f} ms",
            f"{1 / mean:,.0f}" if mean else "-",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
