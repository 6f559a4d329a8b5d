"""One URL, a single Redis or a Redis Cluster: the asyncio client for either.

- ``redis://host:port/db`` (``rediss://``, ``unix://``): one server, ``redis.asyncio.Redis``.
- ``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` for TLS): a Redis
  Cluster, ``redis.asyncio.cluster.RedisCluster``; the listed nodes are only the seeds the
  client asks for the slot map, so two or three of the masters are enough. A cluster has no
  databases: a ``/db`` path is refused rather than silently ignored.

Both come with the caller's socket timeouts and *no* client-side retries: the callers here
(the gateway's cache, the event streams) have a local fallback and must fail in milliseconds,
not wait out redis-py's default of ten cluster retries against a master that is gone.

Keys that one operation must touch together (a MULTI, a Lua script, several keys of one
customer's event stream) must share a hash slot in a cluster: :func:`slot_key` puts the part
that decides the slot in ``{...}`` (Redis hashes only the text inside the first braces).
Single-key commands (the cache's GET/SET) need no tag and are better without one: untagged
keys spread over every master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SINGLE_SCHEMES = ("redis", "rediss", "unix")
# What a caller with a fallback catches: redis-py's cluster errors are not all RedisErrors
# (RedisClusterException: "cannot connect to any startup node", slot not covered).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: ``cluster`` with its seed ``nodes``, or a single server's ``url``."""

    url: str
    cluster: bool
    nodes: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Check a Redis URL and say which kind it is; ``ValueError`` with the reason if it is neither."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SINGLE_SCHEMES:
        return RedisTarget(url=url, cluster=False)
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"expected redis://host:port/db or redis+cluster://host:port[,host:port...], got {url!r}")
    rest = url.split("://", 1)[1]
    auth, _, hosts = rest.rpartition("@")
    hosts, _, path = hosts.partition("/")
    if path.strip("/"):
        raise ValueError(f"a Redis Cluster has no databases: drop '/{path}' from {url!r}")
    nodes = tuple(_host_port(part, url) for part in hosts.split(",") if part.strip())
    if not nodes:
        raise ValueError(f"no cluster nodes in {url!r}")
    username, _, password = auth.partition(":") if auth else ("", "", "")
    return RedisTarget(
        url=url,
        cluster=True,
        nodes=nodes,
        tls=scheme.startswith("rediss"),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(part: str, url: str) -> tuple[str, int]:
    parsed = urlsplit("//" + part.strip())
    try:
        port = parsed.port or 6379
    except ValueError as exc:
        raise ValueError(f"bad port in {part!r} of {url!r}") from exc
    if not parsed.hostname:
        raise ValueError(f"no host in {part!r} of {url!r}")
    return parsed.hostname, port


def connect(url: str, socket_timeout_s: float, max_connections: int, retries: int = 0) -> aioredis.Redis | RedisCluster:
    """The asyncio client for ``url`` (see the module doc), short timeouts, ``retries`` immediate
    retries (none by default).

    Nothing is sent yet: a cluster client fetches the slot map on its first command, so a
    cluster that is down at start-up shows as the first call's error, like a single Redis."""
    target = parse_redis_url(url)
    # retry=0 also means one try per cluster command (redis-py >= 6 takes the cluster's retries
    # from it): the caller falls back to its local cache instead of waiting for a new slot map.
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
        "retry": Retry(NoBackoff(), retries),
        "max_connections": max_connections,
    }
    if not target.cluster:
        return aioredis.Redis.from_url(url, retry_on_timeout=False, **common)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        ssl=target.tls,
        username=target.username,
        password=target.password,
        # Serve the slots that are up while a master is gone (the server still refuses them
        # with CLUSTERDOWN when cluster-require-full-coverage is on; then the caller falls back).
        require_full_coverage=False,
        **common,
    )


def slot_key(tag: str, *parts: str) -> str:
    """``{tag}:part:...``: every key built with the same ``tag`` lands in the same cluster slot."""
    if "{" in tag or "}" in tag:
        raise ValueError(f"a hash tag cannot contain braces: {tag!r}")
    return ":".join(("{" + tag + "}", *parts))
