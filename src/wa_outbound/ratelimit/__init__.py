"""Per-organisation rate limiting: a quota per window and a per-second cap, decided by Redis
(one Lua script) with the database as the authoritative copy and the fallback.

May import `orgs` (the default window), `db` and the shared top-level modules.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.database import DatabaseLimiter
from wa_outbound.ratelimit.decision import Backend, Decision, RateLimiter
from wa_outbound.ratelimit.redis_limiter import RedisLimiter
from wa_outbound.ratelimit.topology import RedisTarget, redis_client

__all__ = [
    "Backend",
    "DatabaseLimiter",
    "Decision",
    "RateLimiter",
    "RedisLimiter",
    "RedisTarget",
    "create_rate_limiter",
    "redis_client",
]


def create_rate_limiter(settings: Settings, engine: AsyncEngine, metrics: Metrics) -> RateLimiter:
    """Redis with database fallback when Redis is configured (`WA_REDIS_URL`, or Sentinel),
    else the database alone."""
    database = DatabaseLimiter(engine, settings, metrics)
    if not settings.redis_enabled:
        metrics.ratelimit_backend.labels(backend="database").set(1)
        return database
    allotter = Allotter(engine, database.defaults)
    return RedisLimiter(RedisTarget.from_settings(settings), database, allotter, metrics)
