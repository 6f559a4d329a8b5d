"""The gateway's HTTP client for the services behind it.

aiohttp's ``ClientSession`` on the hot path: on these 2 cores a gateway calling two trivial
services sustained ~950 req/s with it against ~150 with an httpx ``AsyncClient``
(docs/gateway.md, encode/httpx#3215); the client decides the gateway's ceiling.

Every call has a total timeout, goes through the circuit breaker of its *operation* on that
dependency (``text`` and ``image`` search are separate: a storm of hostile photos cannot open
text search's breaker), and is retried once only on a connection-level failure (a keep-alive
socket the server had just closed): all our calls are side-effect-free reads, so one bounded
retry is safe.

Only the dependency's own failures count against a breaker: a connection failure, a timeout,
a 5xx, a 2xx body that is not JSON. A 4xx (the request was refused, whatever its body), a 503
with ``Retry-After`` (the dependency is shedding load, see shared.service), a request aiohttp
refuses to build from the caller's input, and a caller that went away (cancellation) never do;
they only free a half-open trial slot.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from services.gateway.breaker import BreakerSet, CircuitBreaker


class DependencyUnavailable(Exception):
    """The dependency did not give a usable answer (down, slow, 5xx, breaker open, shedding).

    ``retry_after_s``: when to try again, where known (the dependency's own ``Retry-After``
    when it shed the request, the breaker's reset time when the breaker is open)."""

    def __init__(self, dependency: str, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason
        self.retry_after_s = retry_after_s


class DependencyRejected(Exception):
    """The dependency answered 4xx: the request itself was refused (passed on to the caller)."""

    def __init__(self, dependency: str, status: int, detail: Any) -> None:
        super().__init__(f"{dependency} refused the request ({status}): {detail}")
        self.dependency = dependency
        self.status = status
        self.detail = detail


class ServiceClient:
    """Calls one service (``base_url``) through a breaker per operation, with a per-call timeout."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        breaker: CircuitBreaker | BreakerSet,
        timeout_s: float,
        connect_timeout_s: float = 0.5,
        observe: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.breaker = breaker if isinstance(breaker, BreakerSet) else BreakerSet.around(breaker)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        # observe(dependency, seconds, outcome): latency/outcome hook for metrics.
        self._observe = observe or (lambda _d, _s, _o: None)

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        total = total or self.timeout_s
        return aiohttp.ClientTimeout(total=total, connect=min(self.connect_timeout_s, total))

    async def post_json(self, path: str, payload: dict[str, Any], timeout_s: float | None = None,
                        operation: str | None = None) -> Any:
        return await self._call("POST", path, timeout_s, operation, data=_encode(payload), headers=JSON_HEADERS)

    async def post_form(self, path: str, form: aiohttp.FormData, timeout_s: float | None = None,
                        operation: str | None = None) -> Any:
        # A FormData body can be sent only once, so no retry here (see _call).
        return await self._call("POST", path, timeout_s, operation, retry=False, data=form)

    async def _call(self, method: str, path: str, timeout_s: float | None, operation: str | None = None,
                    retry: bool = True, **kwargs: Any) -> Any:
        breaker = self.breaker.for_operation(operation)
        if not breaker.allow():
            self._observe(self.name, 0.0, "breaker_open")
            raise DependencyUnavailable(self.name, f"circuit breaker open ({breaker.name})", breaker.reset_s)
        url = self.base_url + path
        started = time.perf_counter()
        attempts = 2 if retry else 1
        try:
            for attempt in range(attempts):
                try:
                    async with self.session.request(method, url, timeout=self._timeout(timeout_s), **kwargs) as resp:
                        status = resp.status
                        retry_after = resp.headers.get("Retry-After")
                        raw = await resp.read()
                    break
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    # ClientConnectorError (refused) is a ClientOSError too: retrying a refused
                    # port is cheap and bounded (one more try), and covers a restart race.
                    if attempt + 1 < attempts:
                        continue
                    return self._fail(breaker, started, f"connection failed: {exc.__class__.__name__}: {exc}")
                except TimeoutError:
                    return self._fail(breaker, started, f"timed out after {timeout_s or self.timeout_s:.2f}s")
                except aiohttp.ClientError as exc:
                    return self._fail(breaker, started, f"{exc.__class__.__name__}: {exc}")
                except (ValueError, TypeError) as exc:
                    # aiohttp would not build this request (e.g. a control character in a part
                    # header): the caller's input, which says nothing about the dependency.
                    breaker.release()
                    raise DependencyRejected(self.name, 400, f"the request could not be sent on: {exc}") from exc
        except asyncio.CancelledError:
            breaker.release()  # the caller went away: no verdict on the dependency
            raise
        elapsed = time.perf_counter() - started
        try:
            body = orjson.loads(raw) if raw else None
        except ValueError:
            if status < 400:
                return self._fail(breaker, started, f"HTTP {status} with a body that is not JSON")
            body = raw[:300].decode("utf-8", "replace")
        if status == 503 and retry_after is not None:
            # The dependency is up and shedding load it cannot take (shared.service.ConcurrencyLimit):
            # no verdict on its health, so no breaker failure; the caller sheds in turn.
            self._observe(self.name, elapsed, "shed")
            breaker.release()
            raise DependencyUnavailable(self.name, f"overloaded, shedding load: {_detail(body)}",
                                        _seconds(retry_after))
        if status >= 500:
            self._observe(self.name, elapsed, "error")
            breaker.record_failure()
            raise DependencyUnavailable(self.name, f"HTTP {status}: {_detail(body)}")
        if status >= 400:
            # The service is healthy; it refused this request. Say so to the caller.
            self._observe(self.name, elapsed, "rejected")
            breaker.release()
            raise DependencyRejected(self.name, status, _detail(body))
        self._observe(self.name, elapsed, "ok")
        breaker.record_success()
        return body

    def _fail(self, breaker: CircuitBreaker, started: float, reason: str) -> Any:
        self._observe(self.name, time.perf_counter() - started, "error")
        breaker.record_failure()
        raise DependencyUnavailable(self.name, reason)

    async def readiness(self, timeout_s: float) -> tuple[bool, dict[str, Any]]:
        """GET /readyz, outside the breaker (it is how we learn the service is back)."""
        try:
            async with self.session.get(self.base_url + "/readyz", timeout=self._timeout(timeout_s)) as resp:
                body = await resp.json(content_type=None)
                return resp.status == 200, body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return False, {"error": f"{exc.__class__.__name__}: {exc}"}


JSON_HEADERS = {"Content-Type": "application/json"}


def _encode(payload: Any) -> bytes:
    """orjson (5x faster than json for 200 candidates); json where orjson refuses the
    value (a lone surrogate in a query string, which json escapes)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload).encode()


def _seconds(retry_after: str) -> float:
    try:
        return min(max(float(retry_after), 0.0), 60.0)
    except ValueError:  # an HTTP date, or nonsense: a second
        return 1.0


def _detail(body: Any) -> Any:
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


def make_session(limit: int = 200) -> aiohttp.ClientSession:
    """One pooled session for all services (keep-alive; DNS cached 10 s so --scale replicas rotate)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=10, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False)
