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
with ``Retry-After`` (the dependency is shedding load, see shared.serving.app), a request aiohttp
refuses to build from the caller's input, and a caller that went away (cancellation) never do;
they only free a half-open trial slot.

A service may have several replicas (``base_url`` lists them, or names a host with several
addresses: services.gateway.replicas). Calls go round-robin over the admitted replicas; one
whose connection fails or times out is ejected at once and the call moves on to the next
within its budget, so a dead replica costs the caller a retry, never an error, and only a
call that no replica could answer counts against the breaker.
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
from services.gateway.replicas import Replica, ReplicaPool


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
    """Calls one service (``base_url``: one URL, or several comma-separated, or a name with several
    addresses) through a breaker per operation, with a per-call timeout, over its replicas."""

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
        self.replicas = ReplicaPool(self.base_url)
        self.session = session
        self.breaker = breaker if isinstance(breaker, BreakerSet) else BreakerSet.around(breaker)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        # observe(dependency, seconds, outcome): latency/outcome hook for metrics.
        self._observe = observe or (lambda _d, _s, _o: None)

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        total = total or self.timeout_s
        return aiohttp.ClientTimeout(total=total, connect=min(self.connect_timeout_s, total))

    async def post_json(
        self, path: str, payload: dict[str, Any], timeout_s: float | None = None, operation: str | None = None
    ) -> Any:
        return await self._call("POST", path, timeout_s, operation, data=_encode(payload), headers=JSON_HEADERS)

    async def post_form(
        self, path: str, form: aiohttp.FormData, timeout_s: float | None = None, operation: str | None = None
    ) -> Any:
        # A FormData body can be sent only once, so no retry here (see _call).
        return await self._call("POST", path, timeout_s, operation, retry=False, data=form)

    async def _call(
        self,
        method: str,
        path: str,
        timeout_s: float | None,
        operation: str | None = None,
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        breaker = self.breaker.for_operation(operation)
        if not breaker.allow():
            self._observe(self.name, 0.0, "breaker_open")
            raise DependencyUnavailable(self.name, f"circuit breaker open ({breaker.name})", breaker.reset_s)
        started = time.perf_counter()
        budget = timeout_s or self.timeout_s
        try:
            await self.replicas.ensure_fresh()
            status, retry_after, raw = await self._send(breaker, method, path, started, budget, retry, kwargs)
        except asyncio.CancelledError:
            breaker.release()  # the caller went away: no verdict on the dependency
            raise
        return self._verdict(breaker, started, status, retry_after, raw)

    async def _send(
        self,
        breaker: CircuitBreaker,
        method: str,
        path: str,
        started: float,
        budget: float,
        retry: bool,
        kwargs: dict[str, Any],
    ) -> tuple[int, str | None, bytes]:
        """Try the replicas in turn (services.gateway.replicas) until one answers below 500.

        A connection failure or a timeout moves on to the next replica while the call's
        budget lasts; a 5xx moves on once. With one replica, a connection failure is retried
        once (a keep-alive socket the server had just closed, or a restart race)."""
        order = self.replicas.order()
        tries = (order[:3] if len(order) > 1 else order * 2) if retry else order[:1]
        reason, server_errors = f"timed out after {budget:.2f}s", 0
        for replica in tries:
            remaining = started + budget - time.perf_counter()
            if remaining <= 0.005:
                break
            try:
                async with self.session.request(
                    method, replica.url + path, timeout=self._timeout(remaining), **kwargs
                ) as resp:
                    answer = resp.status, resp.headers.get("Retry-After"), await resp.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # ClientConnectorError (refused, unreachable) is a ClientOSError too; a connect
                # timeout (ConnectionTimeoutError) is a TimeoutError, below.
                reason = f"connection failed: {exc.__class__.__name__}: {exc}"
                self.replicas.failed(replica, reason)
                continue
            except TimeoutError:
                reason = f"timed out after {remaining:.2f}s"
                self.replicas.failed(replica, reason)
                continue
            except aiohttp.ClientError as exc:
                return self._fail(breaker, started, f"{exc.__class__.__name__}: {exc}")
            except (ValueError, TypeError) as exc:
                # aiohttp would not build this request (e.g. a control character in a part
                # header): the caller's input, which says nothing about the dependency.
                breaker.release()
                raise DependencyRejected(self.name, 400, f"the request could not be sent on: {exc}") from exc
            if answer[0] >= 500 and not (answer[0] == 503 and answer[1] is not None):
                self.replicas.failed(replica, f"HTTP {answer[0]}", server_error=True)
                server_errors += 1
                if server_errors == 1 and len(order) > 1 and replica is not tries[-1]:
                    continue  # another replica may be fine
                return answer
            self.replicas.succeeded(replica)
            return answer
        return self._fail(breaker, started, reason)

    def _verdict(
        self, breaker: CircuitBreaker, started: float, status: int, retry_after: str | None, raw: bytes
    ) -> Any:
        """The dependency's answer as JSON, or the exception that says what went wrong."""
        elapsed = time.perf_counter() - started
        try:
            body = orjson.loads(raw) if raw else None
        except ValueError:
            if status < 400:
                return self._fail(breaker, started, f"HTTP {status} with a body that is not JSON")
            body = raw[:300].decode("utf-8", "replace")
        if status == 503 and retry_after is not None:
            # The dependency is up and shedding load it cannot take (shared.serving.app.ConcurrencyLimit):
            # no verdict on its health, so no breaker failure; the caller sheds in turn.
            self._observe(self.name, elapsed, "shed")
            breaker.release()
            raise DependencyUnavailable(self.name, f"overloaded, shedding load: {_detail(body)}", _seconds(retry_after))
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
        """GET /readyz of every replica, outside the breaker (it is how we learn a service, or a
        replica, is back): ready replicas are re-admitted, the others ejected. Ready if any is;
        the body is the first ready replica's (its model version), else the first error."""
        if self.replicas.dynamic:
            await self.replicas.refresh()
        replicas = list(self.replicas.replicas)
        results = await asyncio.gather(*(self._replica_readiness(r, timeout_s) for r in replicas))
        for replica, (ready, body) in zip(replicas, results, strict=True):
            if ready:
                self.replicas.admit(replica)
            elif replica.admitted(time.monotonic()):
                self.replicas.eject(replica, f"/readyz: {body.get('error') or body.get('detail') or body}")
        ready_bodies = [body for ready, body in results if ready]
        return (True, ready_bodies[0]) if ready_bodies else (False, results[0][1] if results else {})

    async def _replica_readiness(self, replica: Replica, timeout_s: float) -> tuple[bool, dict[str, Any]]:
        try:
            async with self.session.get(replica.url + "/readyz", timeout=self._timeout(timeout_s)) as resp:
                body = await resp.json(content_type=None)
                return resp.status == 200, body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return False, {"error": f"{exc.__class__.__name__}: {exc}"}

    def replica_state(self) -> list[dict[str, Any]]:
        """Per replica: its URL, whether it is admitted, requests and failures so far."""
        return self.replicas.state()


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
    """One pooled session for all services: keep-alive per replica address (services.gateway.replicas
    resolves the names itself, so the session's DNS cache only serves names it does not expand)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=10, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False)
