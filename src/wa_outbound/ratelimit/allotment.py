"""Write-ahead of the Redis limiter's grants: Redis grants only from blocks of quota that the
database has already counted as used, in one short transaction per block.

A block is what the call lacks, and at least one second of the org's throughput cap (which is
what Redis can grant in a second anyway; `UNCAPPED_BLOCK` when the org has no cap): a busy org
costs the database about one write per second, and the dispatcher's one call per batch about
one write per batch. The database's `used` is thus never below what was really granted: a Redis
flush or restart resumes from it, and at most the unused part of the last block (under a
second of the cap) goes unsent in that window."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db.types import utcnow
from wa_outbound.ratelimit import store


@dataclass(frozen=True, slots=True)
class Allotment:
    block: int
    counter: store.Counter

    def argv(self) -> tuple[str | int, ...]:
        """The acquire script's optional arguments that apply this allotment."""
        counter, limits = self.counter, self.counter.limits
        return (
            self.block,
            store.to_ms(counter.window_started_at),
            store.to_ms(counter.resets_at),
            limits.quota_limit,
            limits.window_seconds,
            repr(limits.messages_per_second or 0),  # 0: no per-second cap
            limits.version_ms,
            1 if counter.remaining == 0 else 0,
            f"{counter.tat:.6f}",
        )


# With no per-second cap, a block is at least this many (about one claimed batch).
UNCAPPED_BLOCK = 100


class Allotter:
    """Commits blocks of an org's quota to the database for Redis to grant from."""

    def __init__(self, engine: AsyncEngine, defaults: store.Limits) -> None:
        self._engine = engine
        self._defaults = defaults

    async def allot(self, org_id: str, shortfall: int, tat_floor: float) -> Allotment:
        now = utcnow()
        async with self._engine.begin() as conn:
            counter = await store.read_counter(
                conn, org_id, now=now, defaults=self._defaults, lock=True
            )
            # A shortfall of 0 only asks for the limits (Redis re-reads them every minute).
            mps = counter.limits.messages_per_second or UNCAPPED_BLOCK
            one_second = math.ceil(mps) if shortfall else 0
            block = min(max(shortfall, one_second), counter.remaining)
            counter = replace(counter, used=counter.used + block, tat=max(counter.tat, tat_floor))
            await store.save_counter(conn, org_id, counter, now=now)
        return Allotment(block, counter)
