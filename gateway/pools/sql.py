"""SQL pools (SQLAlchemy 2): strongSwan attr-sql semantics on SQLite or PostgreSQL.

Lease states (see :class:`~gateway.pools.base.LeaseState`): an address row is *online* while
``released`` is 0; after release it stays *valid* for the pool's ``timeout`` (reserved for its
identity), then *expired* (free for anyone). A pool with timeout 0 is *static*: an address,
once given to an identity, stays that identity's.

``acquire`` order, as attr-sql: the identity's own released address in the pool (identity
reuse); then, for a static pool, an address-list row nobody holds; then the next never-used
address of the range (``pools.next_offset``, advanced with ``UPDATE ... RETURNING`` so the row
lock hands each offset to one transaction); then, with a timeout, the longest-expired row,
taken with a guarded ``UPDATE ... WHERE released < cutoff`` that only one allocator can win
(the loser retries). So allocation is safe across processes and hosts, without table locks.

Differences from attr-sql, on purpose: rows are created lazily (a /8 costs one row);
``release`` only releases the address if ``identity`` holds it; ``requested`` only selects the
address family (attr-sql ignores the requested address too).

Crash recovery (``crash_recovery=True``, attr-sql's start-up behaviour) closes every online
lease when the pools are opened. Turn it off when several gateways share the database: one
gateway starting must not release the others' leases.
"""

from __future__ import annotations

import ipaddress
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from gateway.pools.addresses import AddressRange, IPAddress, parse_address
from gateway.pools.attributes import Attribute, resolve_attribute_levels
from gateway.pools.base import Lease, LeaseState, PoolStatus, lease_state
from gateway.pools.errors import (
    InvalidArgument,
    NotResizable,
    PoolError,
    PoolExists,
    PoolNotFound,
    PoolOverlap,
)
from gateway.pools.schema import (
    addresses,
    attribute_pools,
    attributes,
    ensure_schema,
    identities,
    leases,
    pools,
)

__all__ = [
    "DEFAULT_DB_URL",
    "LeaseFilter",
    "SqlPools",
    "create_pool_engine",
    "normalize_url",
    "parse_timeout",
]

#: ``nea-pool`` and :class:`SqlPools` default: a SQLite file under ./var/ of the working dir.
DEFAULT_DB_URL = "sqlite:///var/nea-pool.db"

#: Offsets are BIGINT; a larger range (an IPv6 /64) is used up to this many addresses.
MAX_POOL_SIZE = 2**62

_MAX_ATTEMPTS = 50
R = TypeVar("R")
Clock = Callable[[], float]


class _Retry(Exception):
    """Another allocator won the row; start the transaction again."""


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_pool_engine(url: str) -> Engine:
    """An engine set up for concurrent allocators.

    SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (writers queue on the database
    lock with a 30 s busy timeout instead of failing on a read-to-write upgrade), WAL journal,
    foreign keys on; the file's directory is created. PostgreSQL: psycopg 3, READ COMMITTED."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True)
    except ArgumentError as exc:  # includes an unknown dialect or driver
        raise InvalidArgument(
            f"invalid database URL ({exc.__class__.__name__}: {_redacted(url)}): use e.g. "
            "sqlite:///var/nea-pool.db or postgresql://user:password@host/dbname"
        ) from None
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _redacted(url: str) -> str:
    """The URL without its password (never print secrets)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url.split(":")[0] + ":..."


def _ip(data: bytes) -> IPAddress:
    return ipaddress.ip_address(bytes(data))


def parse_timeout(value: str | int) -> int:
    """Hours as ``ipsec pool`` takes them (``24``), or with a unit: ``90s``, ``30m``, ``2h``,
    ``7d``. Returns seconds."""
    if isinstance(value, int):
        seconds = value * 3600
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
        if not m:
            raise InvalidArgument(
                f"invalid timeout '{value}': give hours (24) or a number with s/m/h/d (90m)"
            )
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}[m.group(2)]
    return seconds


@dataclass(frozen=True)
class LeaseFilter:
    """``--filter pool=NAME,id=IDENTITY,addr=ADDRESS,tstamp=UNIXTIME,status=STATE``.

    ``tstamp`` alone (no value) and ``status=online`` select online leases; ``tstamp=T``
    selects leases active at T."""

    pool: str | None = None
    identity: str | None = None
    address: IPAddress | None = None
    tstamp: int | None = None
    online_only: bool = False
    state: LeaseState | None = None

    @classmethod
    def parse(cls, text: str | None) -> LeaseFilter:
        if not text:
            return cls()
        values: dict[str, Any] = {}
        # a distinguished name contains ", ": only a comma without a blank separates items
        for item in re.split(r",(?! )", text):
            key, _, value = item.partition("=")
            key = key.strip()
            if key == "pool" and value:
                values["pool"] = value
            elif key == "id" and value:
                values["identity"] = value
            elif key == "addr":
                values["address"] = parse_address(value, "addr in --filter")
            elif key == "tstamp":
                if not value:
                    values["online_only"] = True
                elif value.isdigit():
                    values["tstamp"] = int(value)
                else:
                    raise InvalidArgument(f"invalid tstamp '{value}' in --filter: a Unix time")
            elif key == "status":
                try:
                    values["state"] = LeaseState(value)
                except ValueError:
                    raise InvalidArgument(
                        f"invalid status '{value}' in --filter: online, valid, expired or static"
                    ) from None
            else:
                raise InvalidArgument(
                    f"invalid --filter item '{item}': use pool=, id=, addr=, tstamp=, status="
                )
        return cls(**values)


class SqlPools:
    """Pools and attributes in SQL; a :class:`~gateway.pools.base.PoolProvider` and the store
    behind ``nea-pool``. Every method runs its own transaction unless given ``conn`` (the CLI
    passes one to make ``--batch`` all or nothing)."""

    blocking = True

    def __init__(
        self,
        url: str | Engine = DEFAULT_DB_URL,
        *,
        crash_recovery: bool = True,
        lease_history: bool = True,
        create_schema: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.engine = url if isinstance(url, Engine) else create_pool_engine(url)
        self.lease_history = lease_history
        self._clock = clock
        if create_schema:
            ensure_schema(self.engine)
        if crash_recovery:
            self.recover()

    def close(self) -> None:
        self.engine.dispose()

    # plumbing ---------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock())

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as c:
                yield c

    def _retrying(self, fn: Callable[[Connection], R]) -> R:
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (_Retry, IntegrityError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not _transient(exc):
                    raise
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise PoolError(f"database contention: gave up after {_MAX_ATTEMPTS} attempts")

    def _pool_row(self, conn: Connection, name: str) -> Any:
        return conn.execute(select(pools).where(pools.c.name == name)).first()

    def _require_pool(self, conn: Connection, name: str) -> Any:
        row = self._pool_row(conn, name)
        if row is None:
            raise PoolNotFound(name)
        return row

    def _identity_id(self, conn: Connection, identity: str, create: bool) -> int | None:
        if len(identity) > 1024:
            raise InvalidArgument("identity longer than 1024 characters")
        found = conn.execute(select(identities.c.id).where(identities.c.data == identity)).first()
        if found is not None:
            return int(found[0])
        if not create:
            return None
        # a concurrent insert of the same identity raises IntegrityError: the caller retries
        return _new_id(conn.execute(insert(identities).values(data=identity)))

    def _close_leases(self, conn: Connection, where: Any, now: int) -> int:
        """Mark the matching online rows released at ``now`` and record them in the lease
        history. The UPDATE decides which rows this transaction closed (RETURNING), so two
        gateways closing the same lease at once record it once."""
        closed = conn.execute(
            update(addresses)
            .where(where, addresses.c.released == 0)
            .values(released=now)
            .returning(addresses.c.id, addresses.c.identity, addresses.c.acquired)
        ).all()
        history = [
            {"address": r.id, "identity": r.identity, "acquired": r.acquired, "released": now}
            for r in closed
            if r.identity is not None
        ]
        if self.lease_history and history:
            conn.execute(insert(leases), history)
        return len(closed)

    # start-up -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Close leases left online by a crash (history records them). Returns how many."""

        def run(conn: Connection) -> int:
            return self._close_leases(conn, addresses.c.released == 0, self._now())

        return self._retrying(run)

    # PoolProvider -----------------------------------------------------------------------------
    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> IPAddress | None:
        return self._retrying(lambda conn: self._acquire(conn, pool, identity, requested))

    def _acquire(
        self, conn: Connection, name: str, identity: str, requested: IPAddress | None
    ) -> IPAddress | None:
        row = self._pool_row(conn, name)
        if row is None or (requested is not None and requested.version != row.family):
            return None
        ident = self._identity_id(conn, identity, create=True)
        now = self._now()
        a = addresses.c
        taken = {"identity": ident, "acquired": now, "released": 0}

        # 1. identity reuse: this identity's released address in this pool
        mine = conn.execute(
            select(a.id, a.address)
            .where(a.pool == row.id, a.identity == ident, a.released > 0)
            .order_by(a.released.desc())
            .limit(1)
        ).first()
        if mine is not None:
            hit = conn.execute(
                update(addresses)
                .where(a.id == mine.id, a.identity == ident, a.released > 0)
                .values(**taken)
            ).rowcount
            if hit != 1:
                raise _Retry
            return _ip(mine.address)

        # 2. static pool: an address-list row nobody holds
        if row.timeout == 0:
            free = conn.execute(
                select(a.id, a.address)
                .where(a.pool == row.id, a.identity.is_(None))
                .order_by(a.id)
                .limit(1)
            ).first()
            if free is not None:
                hit = conn.execute(
                    update(addresses).where(a.id == free.id, a.identity.is_(None)).values(**taken)
                ).rowcount
                if hit != 1:
                    raise _Retry
                return _ip(free.address)

        # 3. the next never-used address of the range (row lock on the pool serializes this)
        if row.first_addr is not None and row.next_offset < row.size:
            offset = conn.execute(
                update(pools)
                .where(pools.c.id == row.id, pools.c.next_offset < pools.c.size)
                .values(next_offset=pools.c.next_offset + 1)
                .returning(pools.c.next_offset)
            ).scalar()
            if offset is not None:
                address = ipaddress.ip_address(int(_ip(row.first_addr)) + int(offset) - 1)
                conn.execute(insert(addresses).values(pool=row.id, address=address.packed, **taken))
                return address

        # 4. the longest-expired lease of another identity
        if row.timeout > 0:
            cutoff = now - row.timeout
            expired = conn.execute(
                select(a.id, a.address)
                .where(a.pool == row.id, a.released > 0, a.released < cutoff)
                .order_by(a.released)
                .limit(1)
            ).first()
            if expired is not None:
                hit = conn.execute(
                    update(addresses)
                    .where(a.id == expired.id, a.released > 0, a.released < cutoff)
                    .values(**taken)
                ).rowcount
                if hit != 1:
                    raise _Retry
                return _ip(expired.address)
        return None

    def release(self, pool: str, address: IPAddress, identity: str) -> bool:
        def run(conn: Connection) -> bool:
            row = self._pool_row(conn, pool)
            ident = self._identity_id(conn, identity, create=False)
            if row is None or ident is None:
                return False
            a = addresses.c
            where = and_(a.pool == row.id, a.address == address.packed, a.identity == ident)
            return self._close_leases(conn, where, self._now()) > 0

        return self._retrying(run)

    def attributes(self, pool: str, identity: str) -> list[tuple[int, bytes]]:
        with self.engine.connect() as conn:
            at = attributes.c
            ap = conn.execute(
                select(attribute_pools.c.id).where(attribute_pools.c.name == pool)
            ).scalar()
            ident = self._identity_id(conn, identity, create=False)

            def fetch(where: Any) -> list[tuple[int, bytes]]:
                rows = conn.execute(select(at.type, at.value).where(where).order_by(at.id))
                return [(int(t), bytes(v)) for t, v in rows]

            by_id = fetch(and_(at.pool == ap, at.identity == ident)) if ap and ident else []
            by_pool = fetch(and_(at.pool == ap, at.identity.is_(None))) if ap else []
            global_ = fetch(and_(at.pool.is_(None), at.identity.is_(None)))
            return resolve_attribute_levels(by_id, by_pool, global_)

    def status(self, conn: Connection | None = None) -> list[PoolStatus]:
        now = self._now()
        a = addresses.c
        out = []
        with self._tx(conn) as c:
            for row in c.execute(select(pools).order_by(pools.c.name)).all():
                online = c.execute(
                    select(func.count()).where(a.pool == row.id, a.released == 0)
                ).scalar_one()
                if row.timeout:
                    held = or_(a.released == 0, a.released >= now - row.timeout)
                else:
                    held = a.identity.is_not(None)
                leased = c.execute(select(func.count()).where(a.pool == row.id, held)).scalar_one()
                size = row.size
                if row.first_addr is None:
                    ranges: tuple[str, ...] = ("(address list)",)
                else:
                    rng = AddressRange(_ip(row.first_addr), _ip(row.last_addr))
                    ranges, size = (str(rng),), rng.size  # the column is capped at 2**62
                out.append(PoolStatus(row.name, "sql", ranges, size, online, leased, row.timeout))
        return out

    # administration (nea-pool) --------------------------------------------------------------
    def _check_overlap(
        self, conn: Connection, name: str, rng: AddressRange | None, addrs: Iterable[IPAddress]
    ) -> None:
        """Refuse a range or address list that shares an address with another pool."""
        addrs = list(addrs)
        for other in conn.execute(select(pools).where(pools.c.first_addr.is_not(None))).all():
            if other.name == name:
                continue
            orng = AddressRange(_ip(other.first_addr), _ip(other.last_addr))
            if rng is not None and rng.overlaps(orng):
                raise PoolOverlap(
                    f"range {rng} of pool '{name}' overlaps pool '{other.name}' ({orng}); "
                    "choose a range outside it or --resize/--del the other pool"
                )
            for addr in addrs:
                if addr in orng:
                    raise PoolOverlap(f"address {addr} is already in pool '{other.name}' ({orng})")
        list_pool = and_(addresses.c.pool == pools.c.id, pools.c.first_addr.is_(None))
        query = select(pools.c.name, addresses.c.address).where(list_pool, pools.c.name != name)
        if rng is not None:
            length = len(rng.first.packed)
            hit = conn.execute(
                query.where(
                    func.length(addresses.c.address) == length,
                    addresses.c.address >= rng.first.packed,
                    addresses.c.address <= rng.last.packed,
                ).limit(1)
            ).first()
            if hit is not None:
                raise PoolOverlap(
                    f"range {rng} of pool '{name}' contains {_ip(hit.address)} "
                    f"of address-list pool '{hit.name}'"
                )
        packed = [x.packed for x in addrs]
        for i in range(0, len(packed), 500):
            hit = conn.execute(
                query.where(addresses.c.address.in_(packed[i : i + 500])).limit(1)
            ).first()
            if hit is not None:
                raise PoolOverlap(f"address {_ip(hit.address)} is already in pool '{hit.name}'")

    def _prepare_add(self, conn: Connection, name: str, replace: bool) -> None:
        if not name or name.strip() != name:
            raise InvalidArgument(f"invalid pool name '{name}'")
        if self._pool_row(conn, name) is not None:
            if not replace:
                raise PoolExists(name)
            self.delete_pool(name, conn)

    def add_pool(
        self,
        name: str,
        first: IPAddress,
        last: IPAddress,
        timeout: int = 0,
        *,
        replace: bool = False,
        conn: Connection | None = None,
    ) -> PoolStatus:
        """Create a range pool (``--add``/``--replace NAME --start --end --timeout``); no
        address rows are written. ``timeout`` in seconds, 0 = static."""
        rng = AddressRange(first, last)
        if timeout < 0:
            raise InvalidArgument("timeout must not be negative")
        with self._tx(conn) as c:
            self._prepare_add(c, name, replace)
            self._check_overlap(c, name, rng, ())
            c.execute(
                insert(pools).values(
                    name=name,
                    first_addr=first.packed,
                    last_addr=last.packed,
                    family=first.version,
                    timeout=timeout,
                    size=min(rng.size, MAX_POOL_SIZE),
                    next_offset=0,
                )
            )
            return next(s for s in self.status(c) if s.name == name)

    def add_address_pool(
        self,
        name: str,
        lines: Iterable[str],
        timeout: int = 0,
        *,
        replace: bool = False,
        conn: Connection | None = None,
    ) -> int:
        """Create a pool from ``ip`` or ``ip=identity`` lines (``--addresses FILE``); an address
        with an identity is that identity's static lease. Returns the number of addresses."""
        entries: list[tuple[IPAddress, str | None]] = []
        seen: set[IPAddress] = set()
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            text, eq, ident = line.partition("=")
            try:
                addr = parse_address(text)
            except InvalidArgument as exc:
                raise InvalidArgument(f"line {number}: {exc}") from None
            if eq and not ident.strip():
                raise InvalidArgument(f"line {number}: empty identity after '='")
            if addr in seen:
                raise InvalidArgument(f"line {number}: address {addr} listed twice")
            if entries and addr.version != entries[0][0].version:
                raise InvalidArgument(f"line {number}: {addr} mixes IPv4 and IPv6 in one pool")
            seen.add(addr)
            entries.append((addr, ident.strip() if eq else None))
        if not entries:
            raise InvalidArgument("the address file lists no address")
        with self._tx(conn) as c:
            self._prepare_add(c, name, replace)
            self._check_overlap(c, name, None, seen)
            pool_id = _new_id(
                c.execute(
                    insert(pools).values(
                        name=name,
                        first_addr=None,
                        last_addr=None,
                        family=entries[0][0].version,
                        timeout=timeout,
                        size=len(entries),
                        next_offset=len(entries),
                    )
                )
            )
            rows = [
                {
                    "pool": pool_id,
                    "address": addr.packed,
                    "identity": self._identity_id(c, ident, create=True) if ident else None,
                    "acquired": 0,
                    "released": 1,
                }
                for addr, ident in entries
            ]
            c.execute(insert(addresses), rows)
        return len(entries)

    def delete_pool(self, name: str, conn: Connection | None = None) -> None:
        with self._tx(conn) as c:
            row = self._require_pool(c, name)
            ids = select(addresses.c.id).where(addresses.c.pool == row.id)
            c.execute(delete(leases).where(leases.c.address.in_(ids)))
            c.execute(delete(addresses).where(addresses.c.pool == row.id))
            c.execute(delete(pools).where(pools.c.id == row.id))

    def resize(self, name: str, last: IPAddress, conn: Connection | None = None) -> int:
        """Grow a range pool to end at ``last``; returns how many addresses it gained."""
        with self._tx(conn) as c:
            row = self._require_pool(c, name)
            if row.first_addr is None:
                raise NotResizable(f"pool '{name}' is an address list; it has no range to resize")
            old = AddressRange(_ip(row.first_addr), _ip(row.last_addr))
            if last.version != old.version:
                raise InvalidArgument(
                    f"new end {last} is not of the pool's family (IPv{old.version})"
                )
            if int(last) < int(old.last):
                raise NotResizable(
                    f"pool '{name}' ends at {old.last}; shrinking to {last} is not supported"
                )
            rng = AddressRange(old.first, last)
            self._check_overlap(c, name, rng, ())
            c.execute(
                update(pools)
                .where(pools.c.id == row.id)
                .values(last_addr=last.packed, size=min(rng.size, MAX_POOL_SIZE))
            )
            return rng.size - old.size

    def purge(self, name: str, conn: Connection | None = None) -> int:
        """Delete the lease history of a pool; returns how many records went."""
        with self._tx(conn) as c:
            row = self._require_pool(c, name)
            ids = select(addresses.c.id).where(addresses.c.pool == row.id)
            return c.execute(delete(leases).where(leases.c.address.in_(ids))).rowcount

    def leases(self, flt: LeaseFilter | None = None, conn: Connection | None = None) -> list[Lease]:
        """Lease history plus the online leases, like ``ipsec pool --leases``."""
        flt = flt or LeaseFilter()
        now = self._now()
        a, lc, p, i = addresses.c, leases.c, pools.c, identities.c
        out: list[Lease] = []
        with self._tx(conn) as c:
            if flt.pool is not None:
                self._require_pool(c, flt.pool)

            def narrowed(query: Any) -> Any:
                if flt.pool is not None:
                    query = query.where(p.name == flt.pool)
                if flt.identity is not None:
                    query = query.where(i.data == flt.identity)
                if flt.address is not None:
                    query = query.where(a.address == flt.address.packed)
                return query

            history = narrowed(
                select(p.name, a.address, i.data, lc.acquired, lc.released, p.timeout)
                .select_from(leases)
                .join(addresses, lc.address == a.id)
                .join(pools, a.pool == p.id)
                .join(identities, lc.identity == i.id)
            )
            online = narrowed(
                select(p.name, a.address, i.data, a.acquired, a.released, p.timeout)
                .select_from(addresses)
                .join(pools, a.pool == p.id)
                .join(identities, a.identity == i.id)
                .where(a.released == 0)
            )
            rows = list(c.execute(online)) + list(c.execute(history.order_by(lc.id)))
        for name, address, ident, acquired, released, timeout in rows:
            state = lease_state(released, timeout, now)
            if flt.online_only and state is not LeaseState.ONLINE:
                continue
            if flt.state is not None and state is not flt.state:
                continue
            if flt.tstamp is not None and not (
                acquired <= flt.tstamp and (released == 0 or released >= flt.tstamp)
            ):
                continue
            out.append(Lease(name, _ip(address), ident, acquired, released, state))
        return out

    # attributes -------------------------------------------------------------------------------
    def _attr_pool_id(self, conn: Connection, name: str, create: bool) -> int | None:
        found = conn.execute(
            select(attribute_pools.c.id).where(attribute_pools.c.name == name)
        ).scalar()
        if found is not None or not create:
            return None if found is None else int(found)
        return _new_id(conn.execute(insert(attribute_pools).values(name=name)))

    def add_attribute(
        self,
        type_: int,
        value: bytes,
        pool: str | None = None,
        identity: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Global (no pool), per pool, or per identity within a pool (attr-sql: an identity
        attribute needs a pool). The pool is an attribute pool: it may name a pool defined in
        the configuration rather than in SQL."""
        if identity is not None and pool is None:
            raise InvalidArgument(
                "--identity requires --pool: identity attributes belong to a pool"
            )
        with self._tx(conn) as c:
            ap = self._attr_pool_id(c, pool, create=True) if pool else None
            ident = self._identity_id(c, identity, create=True) if identity else None
            c.execute(insert(attributes).values(identity=ident, pool=ap, type=type_, value=value))

    def delete_attributes(
        self,
        type_: int,
        value: bytes | None = None,
        pool: str | None = None,
        identity: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Delete matching attributes (every value of the type when ``value`` is None)."""
        if identity is not None and pool is None:
            raise InvalidArgument(
                "--identity requires --pool: identity attributes belong to a pool"
            )
        at = attributes.c
        with self._tx(conn) as c:
            ap = self._attr_pool_id(c, pool, create=False) if pool else None
            ident = self._identity_id(c, identity, create=False) if identity else None
            if (pool and ap is None) or (identity and ident is None):
                return 0
            where = [
                at.type == type_,
                at.pool == ap if ap is not None else at.pool.is_(None),
                at.identity == ident if ident is not None else at.identity.is_(None),
            ]
            if value is not None:
                where.append(at.value == value)
            return c.execute(delete(attributes).where(*where)).rowcount

    def list_attributes(self, conn: Connection | None = None) -> list[Attribute]:
        at = attributes.c
        query = (
            select(at.type, at.value, attribute_pools.c.name, identities.c.data)
            .select_from(attributes)
            .outerjoin(attribute_pools, at.pool == attribute_pools.c.id)
            .outerjoin(identities, at.identity == identities.c.id)
            .order_by(at.pool.is_not(None), attribute_pools.c.name, at.identity.is_not(None), at.id)
        )
        with self._tx(conn) as c:
            return [Attribute(int(t), bytes(v), pn, idn) for t, v, pn, idn in c.execute(query)]


def _new_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


def _transient(exc: OperationalError) -> bool:
    """Lock waits, deadlocks and serialization failures are worth a retry."""
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(
        word in text for word in ("locked", "busy", "deadlock", "could not serialize", "timeout")
    )
