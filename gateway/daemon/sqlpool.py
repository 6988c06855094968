"""SQL pools (``[pools.NAME] database = URL``) behind the engine's synchronous pool callback.

:class:`gateway.pools.SqlPools` blocks on its database, and the reactor must not.  The
engine's :class:`ike.config.AddressPool` answers synchronously, so the first ``acquire`` for
an IKE_SA starts the query in a worker (the runner: the reactor's thread pool) and raises
:class:`ike.config.AddressPending`; the engine holds the IKE_AUTH response.  When the worker
is done, :attr:`SqlPoolBackend.resume` is called with the IKE_SA, the daemon calls
:meth:`ike.sa.IkeEngine.resume_auth`, and the engine asks again: now the answer (address and
the pool's attributes, e.g. DNS, from the same transaction's database) is there.  Releases
run in the worker too, answered by nobody.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.daemon.config import SqlPoolSpec
from ike.config import AddressPending
from ike.payloads import IpAddress

__all__ = ["Runner", "SqlAnswer", "SqlPoolBackend"]

log = logging.getLogger("gateway.daemon.cfg")

Runner = Callable[[Callable[[], Any]], Any]
"""``runner(fn)`` runs ``fn`` off the reactor and returns a Deferred of its result."""


@dataclass(frozen=True)
class SqlAnswer:
    """What a worker found for one (IKE_SA, pool, IP version)."""

    address: IpAddress | None
    attributes: tuple[tuple[int, bytes], ...] = ()
    family_matches: bool = True
    error: str | None = None
    identity: str = ""


def _sync_runner(fn: Callable[[], Any]) -> Any:
    from twisted.internet import defer

    return defer.maybeDeferred(fn)


@dataclass
class SqlPoolBackend:
    """The SQL pools of one configuration: one :class:`gateway.pools.SqlPools` per URL."""

    specs: Mapping[str, SqlPoolSpec]
    runner: Runner = _sync_runner
    resume: Callable[[bytes], None] = lambda ike_sa: None
    providers: dict[str, Any] = field(default_factory=dict)
    answers: dict[tuple[bytes, str, int], SqlAnswer] = field(default_factory=dict)
    waiting: set[tuple[bytes, str, int]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _order: Any = None

    def _submit(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` through the runner, one at a time in submission order: a release
        (the old IKE_SA of an INITIAL_CONTACT) lands before the next acquire, which then
        finds the identity's address offline and hands it out again."""
        if self._order is None:
            from twisted.internet.defer import DeferredLock

            self._order = DeferredLock()
        return self._order.run(self.runner, fn)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    # -- in the worker -----------------------------------------------------------------------

    def provider(self, name: str) -> Any:
        """The :class:`SqlPools` of pool ``name``'s database (opened once; blocking)."""
        spec = self.specs[name]
        with self._lock:
            p = self.providers.get(spec.database)
            if p is None:
                from gateway.pools import SqlPools

                recovery = all(
                    s.crash_recovery for s in self.specs.values() if s.database == spec.database
                )
                p = SqlPools(
                    spec.database, crash_recovery=recovery, lease_history=spec.lease_history
                )
                self.providers[spec.database] = p
            return p

    def _family(self, provider: Any, name: str) -> int | None:
        for st in provider.status():
            if st.name == name and st.ranges:
                first = str(st.ranges[0]).split("-")[0].split("/")[0].strip()
                return ipaddress.ip_address(first).version
        return None

    def _work(
        self, name: str, identity: str, requested: IpAddress | None, version: int
    ) -> SqlAnswer:
        provider = self.provider(name)
        if self._family(provider, name) != version:
            return SqlAnswer(None, family_matches=False, identity=identity)
        addr = provider.acquire(name, identity, requested)
        if addr is None and requested is not None:
            addr = provider.acquire(name, identity, None)
        attrs = tuple(provider.attributes(name, identity)) if addr is not None else ()
        return SqlAnswer(addr, attrs, identity=identity)

    # -- on the reactor ----------------------------------------------------------------------

    def open_all(self) -> Any:
        """Open every database now (crash recovery runs before the first lease)."""
        from twisted.internet import defer

        return defer.DeferredList(
            [self._submit(functools.partial(self.provider, name)) for name in self.specs],
            consumeErrors=True,
        )

    def lookup(
        self,
        ike_sa: bytes,
        name: str,
        identity: str,
        requested: IpAddress | None,
        version: int,
    ) -> SqlAnswer:
        """The answer for this IKE_SA, or :class:`AddressPending` while a worker asks."""
        key = (ike_sa, name, version)
        answer = self.answers.pop(key, None)
        if answer is not None:
            return answer
        if key not in self.waiting:
            self.waiting.add(key)
            d = self._submit(lambda: self._work(name, identity, requested, version))

            def done(result: Any) -> None:
                self.waiting.discard(key)
                if isinstance(result, SqlAnswer):
                    self.answers[key] = result
                else:
                    msg = getattr(result, "getErrorMessage", lambda: str(result))()
                    log.error("SQL pool %s: %s", name, msg)
                    self.answers[key] = SqlAnswer(None, error=msg)
                self.resume(ike_sa)

            d.addBoth(done)
            answer = self.answers.pop(key, None)
            if answer is not None:  # a runner that answered at once
                return answer
        raise AddressPending(f"SQL pool {name}")

    def status(self) -> Any:
        """A Deferred of the :class:`gateway.pools.PoolStatus` of every SQL pool (from
        the worker)."""

        def work() -> list[Any]:
            out = []
            for name in self.specs:
                out += [st for st in self.provider(name).status() if st.name == name]
            return out

        return self._submit(work)

    def release(self, name: str, address: IpAddress, identity: str) -> None:
        def work() -> bool:
            return bool(self.provider(name).release(name, address, identity))

        def failed(f: Any) -> None:
            log.error("SQL pool %s: release of %s failed: %s", name, address, f.getErrorMessage())

        self._submit(work).addErrback(failed)

    def forget(self, ike_sa: bytes) -> None:
        """The IKE_SA is gone: drop answers nobody will ask for (the lease, if one was
        made for it, is released by the engine through the pool, or stays for reconnect)."""
        for key in [k for k in self.answers if k[0] == ike_sa]:
            answer = self.answers.pop(key)
            if answer.address is not None:
                self.release(key[1], answer.address, answer.identity)

    def close(self) -> None:
        with self._lock:
            for p in self.providers.values():
                try:
                    p.close()
                except Exception:
                    log.debug("closing SQL pool failed", exc_info=True)
            self.providers.clear()
