"""The SQL :class:`~nea.imv.evidence.EvidenceSink`: queue in the caller, one writer thread.

The validators call the sink from the reactor thread, in protocol order. In the default
threaded mode every call only appends to a queue; one daemon thread takes what has
accumulated (up to ``batch`` records) and writes it with :meth:`EvidenceStore.apply` in one
transaction, so the reactor never waits for the database and the order of records is kept.
``threaded=False`` writes at once in the caller's thread (tests, tools).

``last_compliant`` (the validators' ``max_age`` question) must answer at once: the threaded
sink keeps a cache of the last measured pass per (device, policy), preloaded from the database
by the writer thread when it starts (passes within ``compliance_horizon``) and updated by every
passing result the sink sees. Until the preload finishes it answers from what it has seen
(worst case the policy is measured again, never skipped wrongly). Gateways sharing one
PostgreSQL database do not see each other's passes until restarted.

If the database fails (server restart, disk full), the writer retries the batch
(``retries`` times with a growing pause) and then drops it with an error in the log; the
count of dropped records is :attr:`SqlEvidenceSink.dropped`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.db.engine import DEFAULT_DB_URL
from gateway.db.store import (
    AccountingUpdate,
    AddressBound,
    EvidenceStore,
    PolicySync,
    Record,
    SessionEnded,
)
from nea.imv.evidence import (
    DeviceFacts,
    PolicyOutcome,
    PolicyResult,
    RemediationRecord,
    SessionDecision,
    SessionStart,
)

__all__ = ["SqlEvidenceSink", "open_evidence_sink"]

log = logging.getLogger(__name__)

_STOP = object()


class SqlEvidenceSink:
    """Implements :class:`nea.imv.evidence.EvidenceSink` on an :class:`EvidenceStore`."""

    def __init__(
        self,
        store: EvidenceStore,
        *,
        threaded: bool = True,
        batch: int = 500,
        retries: int = 5,
        compliance_horizon: _dt.timedelta = _dt.timedelta(days=30),
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self.store = store
        self.threaded = threaded
        self.batch = batch
        self.retries = retries
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._passes: dict[tuple[str, str], _dt.datetime] = {}
        self._closed = False
        self._warned = False
        self._thread: threading.Thread | None = None
        if threaded:
            since = clock() - compliance_horizon
            self._thread = threading.Thread(
                target=self._run, args=(since,), name="nea-evidence-writer", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ EvidenceSink

    def session_started(self, start: SessionStart) -> None:
        self._put(start)

    def facts_measured(self, facts: DeviceFacts) -> None:
        self._put(facts)

    def policy_result(self, result: PolicyResult) -> None:
        if result.outcome is PolicyOutcome.PASSED and result.device_id:
            self._remember_pass(result.device_id, result.policy, result.at)
        self._put(result)

    def remediation_sent(self, record: RemediationRecord) -> None:
        self._put(record)

    def session_decided(self, decision: SessionDecision) -> None:
        self._put(decision)

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None:
        self._put(SessionEnded(connection_id, at))

    def last_compliant(self, device_id: str, policy: str) -> _dt.datetime | None:
        if not self.threaded:
            return self.store.last_compliant(device_id, policy)
        with self._lock:
            return self._passes.get((device_id, policy))

    # ------------------------------------------------------------------ gateway side

    def bind_address(self, connection_id: int, address: str) -> None:
        """Record the connection's address (the outer address, or the virtual IP): before
        or after its session starts, or after it ended (IKEv2 knows the virtual IP only once
        the IKE_SA is up, after PT-EAP finished inside IKE_AUTH): then the connection's
        latest session takes it."""
        self._put(AddressBound(connection_id, address))

    def accounting(self, acct: AccountingUpdate) -> None:
        """Record a RADIUS accounting session's latest state (queued like the records, so
        it names the posture session its connection has at that point)."""
        self._put(acct)

    def sync_policy(self, config: Any) -> None:
        """Upsert the policy file's groups, policies and enforcements (queued like the
        records, so results written after it name the synced policies)."""
        self._put(PolicySync(config))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        if not self.threaded:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the writer and close the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self.store.close()

    # ------------------------------------------------------------------ internals

    def _remember_pass(self, device: str, policy: str, at: _dt.datetime) -> None:
        with self._lock:
            known = self._passes.get((device, policy))
            if known is None or at > known:
                self._passes[(device, policy)] = at

    def _put(self, record: Record) -> None:
        if self._closed:
            # a validator reporting during shutdown must not fail: drop, say so once
            if not self._warned:
                log.warning(
                    "evidence: sink closed, dropping %s and later records", type(record).__name__
                )
                self._warned = True
            self.dropped += 1
            return
        if self.threaded:
            self._queue.put(record)
        else:
            self._write([record])

    def _write(self, records: list[Record]) -> None:
        for attempt in range(self.retries + 1):
            try:
                self.dropped += self.store.apply(records)
                self.written += len(records)
                return
            except Exception:
                if attempt == self.retries or not self.threaded:
                    log.exception("evidence: dropping %d records", len(records))
                    self.dropped += len(records)
                    if not self.threaded:
                        raise
                    return
                log.warning("evidence: database write failed, retry %d", attempt + 1, exc_info=True)
                time.sleep(min(0.2 * 2**attempt, 5.0))

    def _preload(self, since: _dt.datetime) -> None:
        try:
            loaded = self.store.compliant_since(since)
        except Exception:
            log.exception("evidence: could not preload last compliant times")
            return
        for (device, policy), at in loaded.items():
            self._remember_pass(device, policy, at)

    def _run(self, since: _dt.datetime) -> None:
        self._preload(since)
        stop = False
        while not stop:
            records: list[Record] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    records.append(item)
                if stop or len(records) >= self.batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if records:
                self._write(records)
            for waiter in waiters:
                waiter.set()


def open_evidence_sink(url: str = DEFAULT_DB_URL, *, threaded: bool = True) -> SqlEvidenceSink:
    """Open (create or upgrade) the evidence database at ``url`` and return its sink.

    The gateway calls this at start-up, hands the sink to the validators, calls
    :meth:`SqlEvidenceSink.sync_policy` with the loaded policy file (and again on reload), and
    :meth:`SqlEvidenceSink.close` when the reactor shuts down."""
    return SqlEvidenceSink(EvidenceStore(url), threaded=threaded)
