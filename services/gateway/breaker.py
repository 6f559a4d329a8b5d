"""A circuit breaker per dependency, so a dead service costs one fast refusal, not a timeout.

States (Fowler / Nygard's "Release It!"):

- ``closed``: calls go through; ``failure_threshold`` consecutive failures open it.
- ``open``: calls are refused at once for ``reset_s`` seconds.
- ``half_open``: after ``reset_s`` one trial call goes through; success closes the breaker,
  failure opens it for another ``reset_s``. Other calls are refused while the trial runs.

Only the event loop touches a breaker, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_CODES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one trial at a time."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._trial_in_flight:
            self._state = HALF_OPEN
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._state, self._failures, self._trial_in_flight = CLOSED, 0, False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
            self._state, self._opened_at = OPEN, self._clock()
        self._trial_in_flight = False

    def release(self) -> None:
        """A call ended in a way that says nothing about health (e.g. a 4xx): free the trial slot."""
        self._trial_in_flight = False


DEFAULT_OPERATION = "default"


class BreakerSet:
    """One breaker per *operation* of a dependency (e.g. ``text`` and ``image`` search).

    A request kind that fails (photo decoding that times out, say) opens only its own breaker:
    text search on the same service keeps its own count and keeps answering. ``state`` is the
    worst of them (what readiness and the metrics gauge report for the dependency).
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        default: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._breakers = {DEFAULT_OPERATION: default or CircuitBreaker(name, failure_threshold, reset_s, clock)}

    @classmethod
    def around(cls, breaker: CircuitBreaker) -> BreakerSet:
        """A set whose default operation is ``breaker``; other operations get breakers like it."""
        return cls(breaker.name, breaker.failure_threshold, breaker.reset_s, breaker._clock, default=breaker)

    def for_operation(self, operation: str | None) -> CircuitBreaker:
        operation = operation or DEFAULT_OPERATION
        breaker = self._breakers.get(operation)
        if breaker is None:
            breaker = CircuitBreaker(f"{self.name}:{operation}", self.failure_threshold, self.reset_s, self._clock)
            self._breakers[operation] = breaker
        return breaker

    def states(self) -> dict[str, str]:
        return {op: b.state for op, b in self._breakers.items()}

    @property
    def state(self) -> str:
        return max((b.state for b in self._breakers.values()), key=STATE_CODES.__getitem__)
