"""One reactor call kept armed at a sans-I/O engine's next deadline.

Every engine says when it next wants ``handle_timer(now)`` through ``get_timer()``; its Twisted
adapter re-reads that after each call into the engine.  :class:`EngineTimer` is that re-arming
in one place (the IKE UDP service, which ``gateway.daemon.service`` extends, and the userspace
ESP dataplane use it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["EngineTimer"]


class EngineTimer:
    """At most one pending ``clock.callLater`` at the deadline ``deadline()`` returns.

    Call :meth:`arm` after every call into the engine: an unchanged deadline keeps the pending
    call, a new one replaces it, ``None`` cancels it.  When the call runs, ``fire()`` does (the
    adapter hands ``now`` to the engine's ``handle_timer`` and flushes, which arms again).
    ``now`` is the same clock the deadlines are on.
    """

    def __init__(
        self,
        clock: Any,
        now: Callable[[], float],
        deadline: Callable[[], float | None],
        fire: Callable[[], None],
    ) -> None:
        self.clock = clock
        """An ``IReactorTime`` (a reactor, or ``twisted.internet.task.Clock`` in tests)."""
        self._now = now
        self._deadline = deadline
        self._fire = fire
        self._call: Any = None
        self._at: float | None = None

    def arm(self) -> None:
        when = self._deadline()
        if when == self._at and self.active():
            return
        self.cancel()
        self._at = when
        if when is not None:
            self._call = self.clock.callLater(max(0.0, when - self._now()), self._run)

    def active(self) -> bool:
        """Whether a call is pending."""
        return self._call is not None and bool(self._call.active())

    def cancel(self) -> None:
        if self.active():
            self._call.cancel()
        self._call, self._at = None, None

    def _run(self) -> None:
        self._call, self._at = None, None
        self._fire()
