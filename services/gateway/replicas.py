"""Every replica of a service, round-robin, with the dead ones ejected and re-admitted.

A service URL names its replicas two ways, and both can be mixed in one comma-separated list:

- several base URLs: ``http://10.0.0.5:8002,http://10.0.0.6:8002``;
- a DNS name with several A records: ``http://ranker:8002`` under ``docker compose --scale
  ranker=3`` or a Kubernetes headless Service. The name is resolved to *all* its IPv4
  addresses (``getaddrinfo``) and again every ``resolve_interval_s``, so scaling up or down is
  seen within seconds.

Calls go to the addresses themselves (``http://<ip>:<port>``), one after the other. The HTTP
client keeps a keep-alive pool per address, so reusing connections cannot pin every call on
the replica that happened to answer the first one, which is what connecting by name does
(one resolution, one socket, reused for minutes). HTTPS names are not expanded (a certificate
names the host, not its addresses): put a load balancer in front, or list the replicas.

A replica whose connection fails or times out is ejected at once for ``eject_s`` (doubling
while it keeps failing, up to ``max_eject_s``); three 5xx in a row eject it too. It is
re-admitted when the health poll finds its ``/readyz`` answering 200, or when its ejection
runs out and the next call it is given succeeds. If every replica is ejected, calls still go
to the one whose ejection ends first: ejection never turns a live service into an outage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

FIVE_XX_TO_EJECT = 3
SEEN_MAX = 256


@dataclass
class Replica:
    url: str  # scheme://address:port[/path], no trailing slash
    source: str  # the base URL it came from
    ejected_until: float = 0.0
    eject_s: float = 0.0  # the current ejection length (0: not failing)
    five_xx_streak: int = 0
    requests: int = 0
    failures: int = 0
    ejections: int = 0

    def admitted(self, now: float) -> bool:
        return self.ejected_until <= now

    def stats(self, now: float) -> dict[str, Any]:
        return {
            "url": self.url,
            "admitted": self.admitted(now),
            "requests": self.requests,
            "failures": self.failures,
            "ejections": self.ejections,
        }


@dataclass(frozen=True)
class _Seed:
    source: str
    scheme: str
    host: str
    port: int
    path: str

    @property
    def expands(self) -> bool:
        """A plain-HTTP host name: resolved to every address (see the module doc)."""
        if self.scheme != "http":
            return False
        try:
            ipaddress.ip_address(self.host)
            return False
        except ValueError:
            return True

    def url_for(self, address: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def _parse_seeds(base_url: str) -> list[_Seed]:
    seeds = []
    for part in (p.strip().rstrip("/") for p in base_url.split(",")):
        if not part:
            continue
        parts = urlsplit(part)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http(s)://host:port, got {part!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        seeds.append(_Seed(part, parts.scheme, parts.hostname, port, parts.path))
    if not seeds:
        raise ValueError(f"no service URL in {base_url!r}")
    return seeds


async def resolve_ipv4(host: str, port: int) -> list[str]:
    """Every IPv4 address of ``host`` (sorted, so the order is stable between resolutions)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class ReplicaPool:
    """The replicas behind one service URL (see the module doc)."""

    def __init__(
        self,
        base_url: str,
        eject_s: float = 1.0,
        max_eject_s: float = 15.0,
        resolve_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[[str, int], Any] = resolve_ipv4,
    ) -> None:
        self.seeds = _parse_seeds(base_url)
        self.eject_s, self.max_eject_s = eject_s, max_eject_s
        self.resolve_interval_s = resolve_interval_s
        self._clock = clock
        self._resolver = resolver
        self._resolved_at = -float("inf")
        self._resolving: asyncio.Task | None = None
        self._next = 0
        self._seen: dict[str, Replica] = {}
        # Before the first resolution a name is used as it is (the OS resolves it per connection).
        self.replicas: list[Replica] = [Replica(s.source, s.source) for s in self.seeds]

    @property
    def dynamic(self) -> bool:
        return any(seed.expands for seed in self.seeds)

    async def refresh(self) -> None:
        """Resolve every name again; keep the state of the replicas that are still there."""
        self._resolved_at = self._clock()
        # Replicas that left the name (a container killed, a pod rescheduled) keep their counts
        # if the address comes back; at most SEEN_MAX remembered.
        known = {**self._seen, **{r.url: r for r in self.replicas}}
        fresh: list[Replica] = []
        for seed in self.seeds:
            urls = [seed.source]
            if seed.expands:
                try:
                    urls = [seed.url_for(a) for a in await self._resolver(seed.host, seed.port)] or urls
                except OSError as exc:  # the name does not resolve now: keep what we had
                    log.warning("cannot resolve %s (%s); keeping its last addresses", seed.host, exc)
                    urls = [r.url for r in self.replicas if r.source == seed.source] or urls
            fresh += [known.get(u) or Replica(u, seed.source) for u in urls]
        if [r.url for r in fresh] != [r.url for r in self.replicas]:
            log.info("replicas of %s: %s", ",".join(s.source for s in self.seeds), [r.url for r in fresh])
        self.replicas = fresh
        self._seen.update((r.url, r) for r in fresh)
        while len(self._seen) > SEEN_MAX:
            self._seen.pop(next(iter(self._seen)))

    async def ensure_fresh(self) -> None:
        """On the call path: the first resolution is awaited, later ones run in the background."""
        if not self.dynamic or self._clock() - self._resolved_at < self.resolve_interval_s:
            return
        if self._resolved_at == -float("inf"):
            await self.refresh()
        elif self._resolving is None or self._resolving.done():
            self._resolving = asyncio.get_running_loop().create_task(self.refresh())

    def order(self) -> list[Replica]:
        """This call's replicas to try, in order: the admitted ones round-robin (the turn counts
        over the admitted list, so survivors share a dead replica's calls evenly), then the
        ejected ones by how soon their ejection ends (a last resort)."""
        now = self._clock()
        admitted = [r for r in self.replicas if r.admitted(now)]
        ejected = sorted((r for r in self.replicas if not r.admitted(now)), key=lambda r: r.ejected_until)
        if admitted:
            start = self._next % len(admitted)
            admitted = admitted[start:] + admitted[:start]
        self._next += 1
        return admitted + ejected

    def succeeded(self, replica: Replica) -> None:
        replica.requests += 1
        self.admit(replica)

    def admit(self, replica: Replica) -> None:
        """It answered (a call, or its /readyz): back in the rotation, its ejection length reset."""
        if replica.eject_s or replica.ejected_until:
            log.info("replica %s answers again; re-admitted", replica.url)
        replica.ejected_until, replica.eject_s, replica.five_xx_streak = 0.0, 0.0, 0

    def failed(self, replica: Replica, reason: str, server_error: bool = False) -> None:
        """A failure of this replica: connection-level ones eject it now, 5xx after a streak."""
        replica.requests += 1
        replica.failures += 1
        if server_error:
            replica.five_xx_streak += 1
            if replica.five_xx_streak < FIVE_XX_TO_EJECT:
                return
        self.eject(replica, reason)

    def eject(self, replica: Replica, reason: str) -> None:
        """Out of the rotation for ``eject_s``, twice as long as last time if its last ejection
        ran out and it failed again; failures while it is out (calls that were already in
        flight when it died) do not lengthen it."""
        if not replica.admitted(self._clock()):
            return
        replica.eject_s = min(self.max_eject_s, replica.eject_s * 2 or self.eject_s)
        replica.ejected_until = self._clock() + replica.eject_s
        replica.ejections += 1
        if len(self.replicas) > 1:
            log.warning("replica %s ejected for %.1f s: %s", replica.url, replica.eject_s, reason)

    def state(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [r.stats(now) for r in self.replicas]
