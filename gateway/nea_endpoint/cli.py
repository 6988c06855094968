"""``nea-endpoint``: connect this host (or a simulated one) to a nea-gateway and show the verdict.

::

    nea-endpoint --server vpn.example.com --id alice@example.com --eap eap-ttls \\
                 --password secret --ca ca.pem [--profile laptop.toml] [--once] [--json]
    nea-endpoint -c endpoint.toml --once

The endpoint runs IKEv2 as initiator, authenticates with the chosen EAP method (PT-EAP with
the collectors runs inside EAP-TTLS / PEAP when the gateway asks for it), receives its
virtual IP and shows the verdict, the reasons and the remediation instructions.  Without
``--once`` it stays connected until interrupted (Ctrl-C deletes the IKE_SA); with ``--once``
it deletes the IKE_SA right after the result and exits with a status that reflects it:

    0 allow   3 isolate   4 denied or authentication failed   1 no answer / protocol error
    2 usage or configuration error

Staying connected, it re-assesses (an endpoint that was isolated and has fixed its problem):
on SIGUSR1, every ``--reassess-after SECONDS``, when the ``--profile`` file changes with
``--watch-profile``, and when the gateway asks with an RFC 4478 AUTH_LIFETIME notify
(``nea-gateway reassess``).  Over IKEv2 PT-EAP runs inside IKE_AUTH, so re-assessing is
re-authenticating: the profile (or this host) is read again, a new IKE_SA is brought up and
assessed, then the old one is deleted (make-before-break); the new result is shown (with
``--json`` one more JSON document) and the exit status is that of the latest result.

By default the SAs and the virtual IP are negotiated and reported, not installed (plain
mode); ``--dataplane userspace`` (root) installs them: the virtual IP on a TUN device
(``nea-ep0``), userspace ESP, routes for the gateway's networks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gateway.nea_endpoint.client import EndpointClient, EndpointResult
from gateway.nea_endpoint.options import (
    EAP_METHODS,
    INNER_METHODS,
    OptionsError,
    load_options_file,
    merged,
)

__all__ = ["build_parser", "main", "render"]

EXIT_USAGE = 2
PROFILE_POLL = 1.0
"""Seconds between looks at the ``--watch-profile`` file."""

_STYLE = {
    "allow": "bold green",
    "isolate": "bold yellow",
    "denied": "bold red",
    "auth-failed": "bold red",
    "error": "bold red",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nea-endpoint",
        description="Connect to a nea-gateway over IKEv2 + EAP with posture assessment.",
        epilog="exit status with --once: 0 allow, 3 isolate, 4 denied or authentication "
        "failed, 1 no answer or protocol error, 2 usage or configuration error",
    )
    p.add_argument("-c", "--config", type=Path, help="TOML file with the options below")
    p.add_argument("--server", help="gateway HOST[:PORT] (port 500 by default)")
    p.add_argument("--id", help="IKE identity (and EAP identity unless --eap-id)")
    p.add_argument("--eap-id", help="EAP identity, if it differs from --id")
    p.add_argument(
        "--eap",
        help=f"EAP method: {', '.join(EAP_METHODS)}, or none (IKE --psk / --cert) "
        "[default eap-ttls]",
    )
    p.add_argument("--inner", choices=INNER_METHODS, help="inner method of TTLS / PEAP")
    p.add_argument(
        "--password",
        help="EAP password (or $NEA_ENDPOINT_PASSWORD, or password in the -c file: "
        "a command line is visible to other users)",
    )
    p.add_argument("--psk", help="IKE pre-shared key (instead of the gateway's certificate)")
    p.add_argument("--cert", type=Path, help="client certificate (EAP-TLS or IKE pubkey)")
    p.add_argument("--key", type=Path, help="private key of --cert (PEM, unencrypted)")
    p.add_argument(
        "--ca", type=Path, action="append", help="CA certificate of the gateway (repeatable)"
    )
    p.add_argument("--server-id", help="the gateway identity to insist on (IDr, TLS name)")
    p.add_argument(
        "--profile", type=Path, help="simulated endpoint (TOML profile) instead of this host"
    )
    p.add_argument(
        "--no-posture", action="store_true", help="do not answer posture assessments"
    )
    p.add_argument("--source", help="local address to send from")
    p.add_argument(
        "--dataplane",
        choices=("none", "userspace"),
        help="none: report the SAs only [default]; userspace: install the virtual IP, "
        "routes and SAs (userspace ESP on a TUN device, root)",
    )
    p.add_argument(
        "--natt-port", type=int, help="the gateway's NAT-T port, used with a dataplane [4500]"
    )
    p.add_argument("--timeout", type=float, help="seconds to wait for the outcome [30]")
    p.add_argument("--once", action="store_true", help="report, delete the IKE_SA and exit")
    p.add_argument(
        "--reassess-after",
        type=float,
        metavar="SECONDS",
        help="without --once: re-assess (re-authenticate) every SECONDS",
    )
    p.add_argument(
        "--watch-profile",
        action="store_true",
        help="without --once: re-assess when the --profile file changes "
        "(SIGUSR1 re-assesses at any time)",
    )
    p.add_argument(
        "--pt-tls",
        metavar="HOST[:PORT]|referral",
        help="re-assess over PT-TLS (RFC 6876) with the gateway's PDP inside the tunnel "
        "(CRETRY on SIGUSR1 / --watch-profile instead of re-authenticating); 'referral' "
        "takes the PDP the gateway named in the assessment [port 271]",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    return p


def _options(args: argparse.Namespace) -> Any:
    file_values: dict[str, Any] = load_options_file(args.config) if args.config else {}
    eap: Any = args.eap
    if eap is not None and eap.lower() == "none":
        eap = False
    cli: dict[str, Any] = {
        "server": args.server,
        "id": args.id,
        "eap_id": args.eap_id,
        "eap": eap,
        "inner": args.inner,
        "password": args.password or os.environ.get("NEA_ENDPOINT_PASSWORD") or None,
        "psk": args.psk,
        "cert": args.cert,
        "key": args.key,
        "ca": tuple(args.ca) if args.ca else None,
        "server_id": args.server_id,
        "profile": args.profile,
        "posture": False if args.no_posture else None,
        "source": args.source,
        "timeout": args.timeout,
        "dataplane": args.dataplane,
        "natt_port": args.natt_port,
        "reassess_after": args.reassess_after,
        "watch_profile": True if args.watch_profile else None,
        "pt_tls": args.pt_tls,
    }
    if cli["eap"] is False:
        cli["eap"] = None
        file_values["eap"] = None
    elif "eap" not in file_values and cli["eap"] is None:
        # PSK or a certificate without --eap means IKE authentication.
        if cli["psk"] or file_values.get("psk") or (
            (cli["cert"] or file_values.get("cert")) and not
            (cli["password"] or file_values.get("password"))
        ):
            file_values["eap"] = None
    return merged(file_values, cli)


def render(result: EndpointResult, console: Console) -> None:
    """The result for people: the verdict, the connection, reasons and remediation."""
    style = _STYLE.get(result.outcome, "bold")
    head = Text()
    head.append(result.outcome.upper(), style=style)
    head.append(f"  {result.message}")
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    t.add_row("gateway", f"{result.server[0]}:{result.server[1]}")
    t.add_row("identity", f"{result.identity} ({result.auth})")
    t.add_row("posture verdict", result.verdict)
    if result.posture is not None and result.posture_ran and result.posture.evaluation is not None:
        ev = result.posture.evaluation
        t.add_row("evaluation", getattr(ev, "name", str(ev)).lower().replace("_", " "))
    if result.virtual_ips:
        t.add_row("virtual IP", ", ".join(result.virtual_ips))
    for c in result.children:
        t.add_row(
            f"CHILD_SA {c.name}",
            f"{', '.join(c.local_ts)} === {', '.join(c.remote_ts)}  "
            f"(spi {c.spi_in}/{c.spi_out})",
        )
    for err in result.child_errors:
        t.add_row("CHILD_SA failed", err)
    if result.ike is not None:
        t.add_row("IKE_SA", f"{result.ike['spi_i']}_i {result.ike['spi_r']}_r "
                  f"{result.ike['proposal']}")
    if result.error:
        t.add_row("notify", result.error)
    t.add_row("dataplane", result.dataplane)
    t.add_row("time", f"{result.duration:.2f} s")
    console.print(Panel(t, title=head, title_align="left", border_style=style.split()[-1]))
    p = result.posture
    if p is not None and result.posture_ran:
        if p.reasons:
            console.print("[bold]Reasons[/bold]")
            for lang, text in p.reasons:
                console.print(f"  • {text}" + (f" [dim]({lang})[/dim]" if lang else ""))
        if p.remediation:
            console.print("[bold]Remediation[/bold]")
            for r in p.remediation:
                what = r.text if r.text is not None else r.uri
                console.print(f"  → {what} [dim]({r.collector})[/dim]")


def _file_state(path: Path) -> bytes | None:
    """The file's content (None while it cannot be read, e.g. mid-rewrite)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    # Without -v only errors are logged: the result says what went wrong.
    logging.basicConfig(
        level=(logging.ERROR, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    err = Console(stderr=True)
    try:
        options = _options(args)
    except OptionsError as exc:
        err.print(f"[red]nea-endpoint:[/red] {exc}")
        return EXIT_USAGE

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    out = Console()
    status = {"code": 1}
    def progress(text: str) -> None:
        if not args.json:
            err.print(f"[dim]{text}[/dim]")

    def closed_by_gateway(reason: str) -> None:
        err.print(f"IKE_SA closed: {reason}")
        stop()

    def show(result: EndpointResult) -> None:
        status["code"] = result.exit_code
        if args.json:
            print(json.dumps(result.to_json(), indent=2), flush=True)
        else:
            render(result, out)

    def reassessed(result: EndpointResult) -> None:
        show(result)
        if not client.connected:
            stop()

    # What the first assessment reads; a change from here on (even during it) re-assesses.
    profile_seen = {"seen": _file_state(options.profile) if options.profile else None}
    try:
        client = EndpointClient(
            options,
            reactor,
            on_progress=progress,
            on_closed=closed_by_gateway,
            on_reassessed=reassessed,
        )
    except OptionsError as exc:
        err.print(f"[red]nea-endpoint:[/red] {exc}")
        return EXIT_USAGE
    except OSError as exc:
        err.print(f"[red]nea-endpoint:[/red] {exc}")
        return 1

    def stop(_: Any = None) -> None:
        if reactor.running:
            reactor.stop()

    def reassess(reason: str) -> None:
        if not client.connected:
            return
        client.reauthenticate(reason).addErrback(
            lambda f: err.print(f"[red]re-assessment:[/red] {f.getErrorMessage()}")
        )

    def watch_triggers() -> None:
        from twisted.internet.task import LoopingCall

        if options.reassess_after is not None:
            every = LoopingCall(reassess, f"every {options.reassess_after:g} s")
            every.clock = reactor
            every.start(options.reassess_after, now=False)
        if options.watch_profile and options.profile is not None:
            watched = options.profile
            last = profile_seen

            def check() -> None:
                now = _file_state(watched)
                if now != last["seen"]:
                    last["seen"] = now
                    reassess(f"{watched.name} changed")

            poll = LoopingCall(check)
            poll.clock = reactor
            poll.start(PROFILE_POLL, now=False)

    def shown(result: EndpointResult) -> Any:
        show(result)
        if args.once or result.ike is None:
            return client.disconnect().addBoth(stop)
        if not args.json:
            err.print(
                "[dim]connected; SIGUSR1 re-assesses, Ctrl-C deletes the IKE_SA and exits[/dim]"
            )
        watch_triggers()
        return None

    def interrupted(*_: Any) -> None:
        reactor.callFromThread(lambda: client.disconnect().addBoth(stop))

    def failed(failure: Any) -> None:
        err.print(f"[red]nea-endpoint: internal error:[/red] {failure.getErrorMessage()}")
        status["code"] = 1
        stop()

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(
        signal.SIGUSR1, lambda *_: reactor.callFromThread(reassess, "SIGUSR1")
    )
    reactor.callWhenRunning(lambda: client.connect().addCallback(shown).addErrback(failed))
    reactor.run(installSignalHandlers=False)
    return status["code"]
