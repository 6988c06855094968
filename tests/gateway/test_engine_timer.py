"""gateway.engine_timer.EngineTimer: one pending call at the engine's deadline."""

from __future__ import annotations

from twisted.internet.task import Clock

from gateway.engine_timer import EngineTimer


class _Engine:
    def __init__(self) -> None:
        self.deadline: float | None = None
        self.fired: list[float] = []


def _timer(clock: Clock, engine: _Engine) -> EngineTimer:
    return EngineTimer(
        clock, clock.seconds, lambda: engine.deadline, lambda: engine.fired.append(clock.seconds())
    )


def test_fires_at_the_deadline_once() -> None:
    clock, engine = Clock(), _Engine()
    timer = _timer(clock, engine)
    engine.deadline = 5.0
    timer.arm()
    timer.arm()  # unchanged deadline: still one call
    assert len(clock.getDelayedCalls()) == 1 and timer.active()
    clock.advance(4.9)
    assert engine.fired == []
    clock.advance(0.1)
    assert engine.fired == [5.0] and not timer.active()
    assert clock.getDelayedCalls() == []


def test_new_deadline_replaces_the_call_and_none_cancels() -> None:
    clock, engine = Clock(), _Engine()
    timer = _timer(clock, engine)
    engine.deadline = 10.0
    timer.arm()
    engine.deadline = 3.0
    timer.arm()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [3.0]
    engine.deadline = None
    timer.arm()
    assert clock.getDelayedCalls() == [] and not timer.active()
    clock.advance(20)
    assert engine.fired == []


def test_past_deadline_fires_at_once_and_cancel_stops_it() -> None:
    clock, engine = Clock(), _Engine()
    clock.advance(100)
    timer = _timer(clock, engine)
    engine.deadline = 50.0
    timer.arm()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [100.0]
    timer.cancel()
    clock.advance(1)
    assert engine.fired == [] and clock.getDelayedCalls() == []
    timer.arm()  # re-armed after a cancel, even for the same deadline
    clock.advance(0)
    assert engine.fired == [101.0]
