"""``python -m gateway.radius --config FILE``: run the RADIUS front-end in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from gateway.radius.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.radius", description=__doc__)
    parser.add_argument("--config", required=True, help="TOML configuration file")
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    from gateway.radius.compose import listen

    try:
        _service, ports = listen(config, reactor)
    except Exception as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    auth, acct = (p.getHost() for p in ports)
    # One line on stdout that tests and supervisors can wait for (ports may be 0 = any).
    print(
        f"listening auth={auth.host}:{auth.port} acct={acct.host}:{acct.port}",
        flush=True,
    )
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
