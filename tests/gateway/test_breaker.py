"""The gateway's circuit breaker: closed, open, half-open and back, and what it refuses."""

from __future__ import annotations

import pytest

from services.gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


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
