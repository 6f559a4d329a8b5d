"""The gateway's circuit breaker: closed, open, half-open and back, and what it refuses."""

from __future__ import annotations

import pytest

from services.gateway.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSet, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_cycle():
    clock = FakeClock()
    b = CircuitBreaker("ranker", failure_threshold=3, reset_s=10, clock=clock)
    b.record_failure()
    b.record_failure()
    assert b.state == CLOSED and b.allow()
    b.record_success()  # a success resets the consecutive count
    for _ in range(3):
        b.record_failure()
    assert b.state == OPEN and not b.allow()
    clock.now += 9.9
    assert not b.allow()
    clock.now += 0.1  # reset_s elapsed: one trial only
    assert b.state == HALF_OPEN
    assert b.allow() and not b.allow()
    b.record_failure()  # the trial failed: open for another reset_s
    assert b.state == OPEN and not b.allow()
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert b.state == CLOSED and b.allow() and b.allow()


def test_breaker_release_frees_the_trial_slot():
    clock = FakeClock()
    b = CircuitBreaker("search", failure_threshold=1, reset_s=1, clock=clock)
    b.record_failure()
    clock.now += 1
    assert b.allow() and not b.allow()
    b.release()  # a 4xx says nothing about health
    assert b.allow()


def test_breaker_refuses_nonsense():
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)


def test_breaker_set_keeps_operations_apart():
    t = [0.0]
    breakers = BreakerSet("search", failure_threshold=2, reset_s=1.0, clock=lambda: t[0])
    image, text = breakers.for_operation("image"), breakers.for_operation("text")
    assert breakers.for_operation("image") is image and image is not text
    image.record_failure()
    image.record_failure()
    assert image.state == OPEN and not image.allow()
    assert text.state == CLOSED and text.allow()
    assert breakers.state == OPEN  # the dependency's summary is its worst operation
    assert breakers.states() == {"default": CLOSED, "image": OPEN, "text": CLOSED}
