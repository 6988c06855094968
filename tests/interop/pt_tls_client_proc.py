"""A PT-TLS (RFC 6876) client in its own process, for interop tests where something else (e.g.
Debian's charon) owns the IKE_SA: nea-endpoint's PT-TLS session (:class:`EndpointPtTls`, the
collectors fed from a TOML profile) without its IKEv2 part.

::

    python -m tests.interop.pt_tls_client_proc --host 10.99.255.1 --ca ca.pem \\
        --server-name gw.test --user bob --password hello --profile me.toml

Prints one JSON line per event on stdout: ``{"result": "ALLOWED"|"QUARANTINED"|...|null}``
for each assessment result (the first, CRETRY's, the server's SRETRY's) and ``{"closed":
reason}`` / ``{"failed": message}`` at the end.  Reads commands from stdin, one per line:
``retry`` (read the profile again and send CRETRY) and ``close`` (end the session and exit).
EOF on stdin closes too.  The source address is whatever the routing picks (through a
tunnel's route: the virtual IP).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor

from gateway.endpoint import load_profile
from gateway.nea_endpoint.pt_tls import EndpointPtTls

reactor: Any = _reactor


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=271)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--server-name", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--profile", type=Path, required=True)
    args = p.parse_args(argv)

    def result(rec: Any) -> None:
        _emit({"result": rec.name if rec is not None else None})

    def closed(reason: str) -> None:
        _emit({"closed": reason})
        if reactor.running:
            reactor.stop()

    session = EndpointPtTls(
        reactor,
        args.host,
        args.port,
        server_name=args.server_name,
        ca_pems=[args.ca.read_bytes()],
        facts=load_profile(args.profile),
        identity=args.user,
        password=args.password,
        on_result=result,
        on_closed=closed,
    )

    def failed(f: Any) -> None:
        _emit({"failed": f.getErrorMessage()})
        if reactor.running:
            reactor.stop()

    session.start().addCallbacks(result, failed)

    def command(line: str) -> None:
        try:
            if line == "retry":
                session.retry(load_profile(args.profile))
            elif line == "close":
                session.close()
                reactor.callLater(0.5, reactor.stop)
        except Exception as exc:  # report it, keep the session
            _emit({"error": f"{line}: {exc}"})

    def read_stdin() -> None:
        for raw in sys.stdin:
            reactor.callFromThread(command, raw.strip())
        reactor.callFromThread(command, "close")

    threading.Thread(target=read_stdin, daemon=True).start()
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
