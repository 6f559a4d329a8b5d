"""Small client-side helpers the e2e tests share (plain HTTP against the running gateway)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx

ARTICLE_ID_DIGITS = 10

_fresh = itertools.count(1)


def fresh_k() -> int:
    """A k never used before in this session (1..100, cycling), so a request misses the cache."""
    return 1 + (next(_fresh) * 37) % 100


def recommend(base: str, customer_id: str, k: int = 12, timeout: float = 15.0, **params: Any) -> httpx.Response:
    return httpx.get(base + "/recommend", params={"customer_id": customer_id, "k": k, **params}, timeout=timeout)


def wait_until(check: Callable[[], Any], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; raise with the last value if it never does."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s}s (last: {last!r})")
