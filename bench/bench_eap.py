"""Server CPU per EAP authentication: EAP-TLS, PEAP-MS-CHAPv2 and TTLS-PAP (issue 5).

Two measurements per method, both CPU time (not wall clock), TLS 1.2, ECDSA P-256
certificates, full handshakes (no session resumption on either side):

* **in-process** -- the EAP server exactly as the RADIUS front-end builds it
  (``gateway.radius.compose.build_eap_factory``) against our own EAP peer
  (``ike.eap.peer.EapPeer`` with the matching peer method), back to back in memory. Only the
  server's ``start()`` / ``receive()`` calls are timed (``time.thread_time``); the peer runs
  untimed between them. No RADIUS framing, no sockets.
* **end to end** -- ``python -m gateway.radius`` as a subprocess on loopback, driven by
  wpa_supplicant's ``eapol_test -r N`` (N+1 authentications in one run). The server process's
  CPU (the scheduler's run time of every thread, :func:`process_cpu`) is read before and
  after and divided by the number of successful authentications counted in the server's
  log. This includes the RADIUS engine, the Twisted reactor, the UDP system calls and three
  INFO log lines per authentication.

A middle column runs the RADIUS engine in-process (``RadiusServer.receive_datagram`` fed
Access-Requests as eapol_test's authenticator sends them, timed alone), which splits the
end-to-end cost into EAP, RADIUS codec and the process around them.

Run: ``python bench/bench_eap.py [auths]`` (default 200 in-process, auths/4 end to end).
``--no-e2e`` skips the eapol_test part. Not part of the tests.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import Figure, Result, Skipped, progress  # noqa: E402
from gateway.radius.compose import build_eap_factory, build_server  # noqa: E402
from gateway.radius.config import RadiusConfig, parse_config  # noqa: E402
from ike.eap.methods import MsChapV2PeerMethod  # noqa: E402
from ike.eap.peer import EapPeer  # noqa: E402
from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig  # noqa: E402
from ike.eap_tls.method import EapTlsPeer  # noqa: E402
from ike.eap_tls.tls import TlsPeerConfig, TlsVersion  # noqa: E402
from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig  # noqa: E402
from radius import (  # noqa: E402
    Attribute,
    AttributeType,
    Code,
    Packet,
    RadiusClient,
    RadiusServer,
    RequestContext,
    StringAttribute,
    TextAttribute,
    eap_message_attributes,
    encode_request,
    verify_response,
)
from tests.harness.certs import CertFactory, Issued  # noqa: E402

__all__ = [
    "METHODS",
    "Method",
    "Pki",
    "ServerProcess",
    "count_eapol_successes",
    "eapol_block",
    "handshake_problem",
    "make_pki",
    "our_server",
    "process_cpu",
    "run_eapol",
]

SECRET = "bench-secret"
USER, PASSWORD = "bob", "hello"


@dataclass(frozen=True)
class Method:
    label: str
    config_name: str
    """The name in ``[eap] methods`` (our server) / FreeRADIUS ``default_eap_type``."""


METHODS = (
    Method("EAP-TLS", "tls"),
    Method("PEAP-MS-CHAPv2", "peap"),
    Method("TTLS-PAP", "ttls"),
)


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued


def make_pki(directory: Path) -> Pki:
    factory = CertFactory(directory)
    ca = factory.ca("bench-ca")
    server = factory.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    client = factory.issue(ca, "alice", san_email=("alice@example.test",), eku=("clientAuth",))
    return Pki(ca, server, client)


def config_text(method: Method, pki: Pki, *, port: int = 0, acct_port: int = 0) -> str:
    """Our server's TOML: one method (so no Nak round trip), TLS 1.2 like FreeRADIUS."""
    return f"""
[radius]
listen = "127.0.0.1"
auth_port = {port}
acct_port = {acct_port}

[[radius.clients]]
address = "127.0.0.1/32"
secret = "{SECRET}"
name = "bench"

[eap]
methods = ["{method.config_name}"]
inner_methods = ["mschapv2"]

[users]
{USER} = "{PASSWORD}"
alice = "unused"

[tls]
cert = "{pki.server.chain_path}"
key = "{pki.server.key_path}"
ca = ["{pki.ca.cert_path}"]
min_version = "1.2"
max_version = "1.2"
"""


# -- in-process ---------------------------------------------------------------------------


def _peer(method: Method, pki: Pki) -> EapPeer:
    tls = TlsPeerConfig(
        (pki.ca.cert_pem,),
        pki.client.chain_pem if method.config_name == "tls" else None,
        pki.client.key_pem if method.config_name == "tls" else None,
        server_name="radius.test",
        max_version=TlsVersion.TLS1_2,
    )
    if method.config_name == "tls":
        return EapPeer(b"alice", [(13, lambda: EapTlsPeer(tls))])
    if method.config_name == "peap":
        inner: Any = ((26, lambda: MsChapV2PeerMethod(USER.encode(), PASSWORD)),)
        return EapPeer(
            b"anonymous",
            [(25, lambda: EapPeapPeer(PeapPeerConfig(tls, USER.encode(), inner)))],
        )
    return EapPeer(
        b"anonymous",
        [
            (
                21,
                lambda: EapTtlsPeer(TtlsPeerConfig(tls, USER.encode(), InnerAuth.PAP, PASSWORD)),
            )
        ],
    )


def one_in_process(
    factory: Callable[[RequestContext], Any], context: RequestContext, method: Method, pki: Pki
) -> float:
    """One authentication; the CPU seconds spent in the server's calls."""
    peer = _peer(method, pki)
    t0 = time.thread_time()
    server = factory(context)
    packet: bytes | None = server.start()
    spent = time.thread_time() - t0
    # The NAS-side Identity exchange is part of the EAP conversation here (EAP-Start).
    for _ in range(200):
        if packet is None:
            break
        answer = peer.receive(packet)
        if server.done or peer.done or answer is None:
            break
        t0 = time.thread_time()
        packet = server.receive(answer)
        spent += time.thread_time() - t0
    if not (server.succeeded and peer.succeeded):
        raise SystemExit(
            f"{method.label}: in-process authentication failed: "
            f"server {server.failure_reason!r}, peer {peer.failure_reason!r}"
        )
    return spent


def one_radius(engine: RadiusServer, method: Method, pki: Pki, source: tuple[str, int]) -> float:
    """One authentication through the RADIUS engine (Access-Request in, Access-Challenge /
    Accept out, as eapol_test's authenticator sends them); CPU seconds in
    ``receive_datagram`` only."""
    peer = _peer(method, pki)
    secret = SECRET.encode()
    # eapol_test's authenticator asks for the identity itself and forwards the Response.
    eap = peer.receive(bytes([1, 0, 0, 5, 1]))
    state: bytes | None = None
    spent = 0.0
    for identifier in range(200):
        assert eap is not None
        attributes: list[Attribute] = [
            TextAttribute(AttributeType.USER_NAME, peer.identity.decode()),
            TextAttribute(AttributeType.CALLING_STATION_ID, "02-00-00-00-00-01"),
            *eap_message_attributes(eap),
        ]
        if state is not None:
            attributes.append(StringAttribute(AttributeType.STATE, state))
        request = Packet(
            Code.ACCESS_REQUEST, identifier % 256, secrets.token_bytes(16), tuple(attributes)
        )
        wire = encode_request(request, secret)
        t0 = time.thread_time()
        answer = engine.receive_datagram(wire, source, time.monotonic())
        while engine.next_event() is not None:
            pass
        spent += time.thread_time() - t0
        assert answer is not None
        response = verify_response(answer, wire[4:20], secret)
        eap_in = response.eap_message()
        if response.code != Code.ACCESS_CHALLENGE:
            if response.code != Code.ACCESS_ACCEPT:
                raise SystemExit(f"{method.label}: RADIUS engine answered {response.code.name}")
            if eap_in is not None:
                peer.receive(eap_in)
            break
        state = response.string(AttributeType.STATE)
        assert eap_in is not None
        eap = peer.receive(eap_in)
    if not peer.succeeded:
        raise SystemExit(f"{method.label}: peer failed over RADIUS: {peer.failure_reason!r}")
    return spent


def in_process_radius(method: Method, pki: Pki, n: int) -> float:
    """Mean CPU seconds per authentication in ``RadiusServer.receive_datagram``."""
    config = parse_config(tomllib.loads(config_text(method, pki)), Path("/"))
    engine = build_server(config)
    one_radius(engine, method, pki, ("127.0.0.1", 40000))
    return sum(one_radius(engine, method, pki, ("127.0.0.1", 40000)) for _ in range(n)) / n


def in_process(method: Method, pki: Pki, n: int) -> tuple[float, float]:
    """(mean, median) server CPU seconds per authentication over ``n`` authentications."""
    config: RadiusConfig = parse_config(tomllib.loads(config_text(method, pki)), Path("/"))
    factory = build_eap_factory(config)
    client = RadiusClient.from_prefix("127.0.0.1/32", SECRET, "bench")
    context = RequestContext(client, ("127.0.0.1", 1), USER, None, None, None)
    one_in_process(factory, context, method, pki)  # warm up (imports, OpenSSL contexts)
    times = sorted(one_in_process(factory, context, method, pki) for _ in range(n))
    return sum(times) / n, times[n // 2]


# -- end to end ---------------------------------------------------------------------------


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has run, all its live threads.

    Sums the scheduler's exact run time (``/proc/PID/task/*/schedstat``, nanoseconds) when
    the kernel has it; else utime + stime from ``/proc/PID/stat``, which the kernel samples
    at tick granularity (10 ms here) -- too coarse for bursts of a few hundred
    microseconds."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except FileNotFoundError:  # the thread ended meanwhile
                continue
        if total:
            return total / 1e9
    except (FileNotFoundError, ValueError, IndexError):
        pass
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def eapol_block(method: Method, pki: Pki) -> str:
    """eapol_test ``network`` block for ``method`` (TLS 1.2: Debian's default for EAP)."""
    common = f'ca_cert="{pki.ca.cert_path}"\nphase1="tls_disable_tlsv1_3=1"\n'
    if method.config_name == "tls":
        return (
            f'eap=TLS\nidentity="alice"\n{common}'
            f'client_cert="{pki.client.cert_path}"\nprivate_key="{pki.client.key_path}"\n'
        )
    if method.config_name == "peap":
        return (
            f'eap=PEAP\nidentity="{USER}"\nanonymous_identity="anonymous"\n'
            f'password="{PASSWORD}"\n{common}phase2="auth=MSCHAPV2"\n'
        )
    return (
        f'eap=TTLS\nidentity="{USER}"\nanonymous_identity="anonymous"\n'
        f'password="{PASSWORD}"\n{common}phase2="auth=PAP"\n'
    )


_SUCCESS = re.compile(r"CTRL-EVENT-EAP-SUCCESS")


def count_eapol_successes(output: str) -> int:
    return len(_SUCCESS.findall(output))


def handshake_problem(output: str) -> str | None:
    """Why eapol_test's run was not all full TLS 1.2 handshakes, or None."""
    if "resumed=1" in output:
        return "a TLS session was resumed"
    versions = set(re.findall(r"SSL: Using TLS version (\S+)", output))
    if versions != {"TLSv1.2"}:
        return f"TLS versions {sorted(versions)}, expected TLSv1.2 only"
    return None


def run_eapol(block: str, port: int, secret: str, workdir: Path, repeats: int) -> str:
    """One eapol_test process doing ``repeats + 1`` authentications; its output."""
    from tests.harness.eapol_test import network_conf

    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "peer.conf"
    conf.write_text(network_conf(block))
    proc = subprocess.run(
        [
            "eapol_test",
            f"-c{conf}",
            "-a127.0.0.1",
            f"-p{port}",
            f"-s{secret}",
            "-t30",
            f"-r{repeats}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=60 + 5 * repeats,
        check=False,
        cwd=workdir,
    )
    return proc.stdout


@dataclass
class ServerProcess:
    pid: int
    port: int
    log: Path

    def accepts(self) -> int:
        return self.log.read_text(errors="replace").count("Access-Accept for")


@contextmanager
def our_server(workdir: Path, method: Method, pki: Pki) -> Iterator[ServerProcess]:
    """``python -m gateway.radius`` (INFO logging, as in production) for ``method``."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "radius.toml"
    conf.write_text(config_text(method, pki))
    log = workdir / "server.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.radius", "--config", str(conf)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("listening"):
                raise SystemExit(f"our server did not start: {log.read_text()[-2000:]}")
            port = int(line.split()[1].rsplit(":", 1)[1])
            yield ServerProcess(proc.pid, port, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def end_to_end(method: Method, pki: Pki, workdir: Path, n: int) -> tuple[float, int]:
    """(server CPU seconds per authentication, authentications) with eapol_test -r."""
    with our_server(workdir, method, pki) as server:
        block = eapol_block(method, pki)
        run_eapol(block, server.port, SECRET, workdir / "warm", 0)  # warm up
        before_cpu, before_accepts = process_cpu(server.pid), server.accepts()
        output = run_eapol(block, server.port, SECRET, workdir / "run", n - 1)
        time.sleep(0.2)  # the last Access-Accept's log line
        cpu = process_cpu(server.pid) - before_cpu
        accepts = server.accepts() - before_accepts
        ok = count_eapol_successes(output)
    if accepts == 0 or ok != accepts:
        raise SystemExit(
            f"{method.label}: eapol_test saw {ok} successes, server {accepts} accepts:\n"
            f"{output[-3000:]}"
        )
    if (problem := handshake_problem(output)) is not None:
        raise SystemExit(f"{method.label}: {problem}")
    return cpu / accepts, accepts


@dataclass(frozen=True)
class Row:
    method: Method
    mean: float
    median: float
    radius_mean: float
    e2e: tuple[float, int] | None
    """(server CPU seconds per authentication, authentications), None when not run."""


def eapol_test_missing() -> str | None:
    if subprocess.run(["which", "eapol_test"], capture_output=True).returncode:
        return "eapol_test not installed (Debian package eapoltest)"
    return None


def run(n: int, e2e: bool, say: Callable[[str], None] | None = None) -> list[Row]:
    n_e2e = max(n // 4, 10)
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-eap-") as tmp:
        pki = make_pki(Path(tmp) / "certs")
        for method in METHODS:
            if say:
                say(f"{method.label}: {n} in-process authentications (EAP, then RADIUS engine)")
            mean, median = in_process(method, pki, n)
            radius_mean = in_process_radius(method, pki, n)
            per_auth: tuple[float, int] | None = None
            if e2e:
                if say:
                    say(f"{method.label}: {n_e2e} end to end (eapol_test)")
                per_auth = end_to_end(method, pki, Path(tmp) / method.config_name, n_e2e)
            out.append(Row(method, mean, median, radius_mean, per_auth))
    return out


def collect(quick: bool) -> list[Result]:
    """Server CPU ms per authentication, per method: EAP engine mean and median, RADIUS
    engine mean, end to end (process). No reference here: ours vs FreeRADIUS is bench_radius."""
    n = 40 if quick else 200
    missing = eapol_test_missing()
    results: list[Result] = []
    for row in run(n, missing is None, progress):
        label = row.method.label
        note = f"{n} auths"
        results += [
            Figure("eap", f"{label}, EAP engine, mean", "ms", row.mean * 1e3, note=note),
            Figure("eap", f"{label}, EAP engine, median", "ms", row.median * 1e3, note=note),
            Figure("eap", f"{label}, RADIUS engine, mean", "ms", row.radius_mean * 1e3, note=note),
        ]
        if row.e2e is not None:
            per_auth, count = row.e2e
            results.append(
                Figure(
                    "eap",
                    f"{label}, end to end (server process)",
                    "ms",
                    per_auth * 1e3,
                    note=f"{count} auths, eapol_test",
                )
            )
        else:
            results.append(Skipped("eap", f"{label}, end to end", missing or "not run"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("auths", nargs="?", type=int, default=200)
    parser.add_argument("--no-e2e", action="store_true", help="skip the eapol_test runs")
    if argv is None:
        # Under ``python -m bench eap radius`` the arguments are the runner's words.
        original = sys.orig_argv
        runner = any(pair == ("-m", "bench") for pair in itertools.pairwise(original))
        argv = [] if runner else sys.argv[1:]
    args = parser.parse_args(argv)
    e2e = not args.no_e2e
    if e2e and (missing := eapol_test_missing()) is not None:
        print(f"{missing}: end to end skipped", file=sys.stderr)
        e2e = False
    table = Table(title="server CPU per EAP authentication (TLS 1.2, ECDSA P-256, full handshakes)")
    for col in (
        "method",
        "EAP engine mean",
        "EAP engine median",
        "RADIUS engine mean",
        "n",
        "end to end (process, eapol_test)",
        "n",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in run(args.auths, e2e):
        cells = [
            row.method.label,
            f"{row.mean * 1e3:.2f} ms",
            f"{row.median * 1e3:.2f} ms",
            f"{row.radius_mean * 1e3:.2f} ms",
            str(args.auths),
        ]
        if row.e2e is not None:
            cells += [f"{row.e2e[0] * 1e3:.1f} ms", str(row.e2e[1])]
        else:
            cells += ["-", "-"]
        table.add_row(*cells)
    Console(width=140).print(table)
    print(
        f"({os.cpu_count()} CPUs; end to end = the server process's scheduler run time "
        "(/proc/PID/task/*/schedstat) over the run divided by its count)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
