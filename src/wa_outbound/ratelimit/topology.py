"""Where the rate limiter's Redis is and how it is reached (`WA_REDIS_MODE`): the one factory of
every Redis client the service makes, redis-py's for the occasional commands and the router
that carries the limiter's scripts.

- `standalone`: one server at `WA_REDIS_URL`.
- `cluster`: a Redis Cluster; `WA_REDIS_URL` is a startup node, the others are found from it.
- `sentinel`: the master named `WA_REDIS_SENTINEL_MASTER`, found by asking `WA_REDIS_SENTINELS`;
  `WA_REDIS_URL`, when set, gives the master's connection options (password, database, TLS),
  its host and port being ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from wa_outbound.config import Settings
from wa_outbound.ratelimit.connections import REDIS_TIMEOUT_S

Mode = Literal["standalone", "cluster", "sentinel"]
# Grants are held back until replicas confirm them for at most this long (WAIT's timeout).
WAIT_TIMEOUT_MS = 100


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str
    mode: Mode = "standalone"
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    wait_replicas: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisTarget:
        sentinels = []
        for entry in settings.redis_sentinels:
            host, _, port = entry.rpartition(":")
            sentinels.append((host.strip("[]"), int(port)))
        return cls(
            url=settings.redis_url or "redis://",
            mode=settings.redis_mode,
            sentinels=tuple(sentinels),
            master=settings.redis_sentinel_master,
            wait_replicas=settings.redis_replicas_to_wait,
        )


def _options() -> dict[str, Any]:
    """Short timeouts and a single retry (for a pooled connection that Redis closed)."""
    return {
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1),
    }


def redis_client(target: RedisTarget | str) -> Redis | RedisCluster:
    """A redis-py client on `target`: a `Redis` (standalone, or Sentinel's current master) or a
    `RedisCluster`."""
    if isinstance(target, str):
        target = RedisTarget(target)
    if target.mode == "cluster":
        return RedisCluster.from_url(target.url, **_options())
    if target.mode == "sentinel":
        master: Redis = sentinel_manager(target).master_for(
            target.master, redis_class=Redis, **_options(), **url_options(target.url)
        )
        return master
    return Redis.from_url(target.url, health_check_interval=0, **_options())


def sentinel_manager(target: RedisTarget) -> Sentinel:
    """Sentinel asks each sentinel in turn; sentinels are asked without the master's password."""
    return Sentinel(  # type: ignore[no-untyped-call]  # unannotated upstream
        list(target.sentinels),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )


def url_options(url: str) -> dict[str, Any]:
    """The connection options of a URL but its host and port (Sentinel names the master's)."""
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = parts.username
    if parts.password:
        options["password"] = parts.password
    if parts.path.strip("/").isdigit():
        options["db"] = int(parts.path.strip("/"))
    if parts.scheme == "rediss":
        options["ssl"] = True
    return options
