"""A throw-away PostgreSQL server for tests and benchmarks.

:func:`postgres_server` runs Debian's ``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/<ver>/bin``,
package ``postgresql``) in a fresh temporary directory, as the ``postgres`` user when we are
root (initdb refuses root). The server listens only on a Unix socket in that directory (no TCP
port, so parallel runs and other services cannot clash; the port number only names the socket)
and is stopped and removed afterwards, even when the test fails.

Fixture ``postgres_url`` (session scope): an SQLAlchemy URL (psycopg 3) of a database on that
server. Use it from a test module with ``from tests.harness.postgres import postgres_url``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.tools import free_tcp_port

__all__ = ["SKIP_REASON", "find_pg_bin", "fresh_database", "postgres_server", "postgres_url"]

SKIP_REASON = "PostgreSQL server binaries not installed (Debian package postgresql)"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl (or $PG_BIN)."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = [p for p in root.iterdir() if p.name.replace(".", "").isdigit()]
        candidates += [
            p / "bin" for p in sorted(versions, key=lambda p: float(p.name), reverse=True)
        ]
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


@contextmanager
def postgres_server(bin_dir: Path | None = None) -> Iterator[str]:
    """Start a server; yield its URL (``postgresql+psycopg://postgres@/postgres?host=...``)."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError(SKIP_REASON)
    base = Path(tempfile.mkdtemp(prefix="nea-pg-"))
    uid: int | None = None
    gid: int | None = None
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        uid, gid = pw.pw_uid, pw.pw_gid
        os.chown(base, uid, gid)
    data, sock, log = base / "data", base / "sock", base / "server.log"
    port = free_tcp_port()
    env = {**os.environ, "LC_ALL": "C"}

    def run(*args: str, check: bool = True) -> None:
        subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            cwd=base,
            env=env,
            user=uid,
            group=gid,
        )

    started = False
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        sock.mkdir()
        if uid is not None and gid is not None:
            os.chown(sock, uid, gid)
        options = f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=50"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}&port={port}"
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"PostgreSQL failed: {exc.cmd[0]}: {exc.stderr.decode(errors='replace')}\n{tail}"
        ) from exc
    finally:
        if started:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server started for this test session (skips if not installed)."""
    if find_pg_bin() is None:
        pytest.skip(SKIP_REASON)
    with postgres_server() as url:
        yield url


@contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a database with a unique name starting with ``prefix`` on the server at
    ``server_url`` (``postgres_url``); yield its URL; drop it afterwards, even while still
    connected to."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    name = prefix + uuid.uuid4().hex[:12]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
