"""Write-ahead of the Redis limiter's grants: Redis grants only from blocks of quota that the
database has already counted as used, in one short transaction per block.

A block is what the call lacks; while an org keeps asking within a second, blocks double, up to
one second of its throughput cap, so the database sees a few writes per second per busy org and
the dispatcher's one-call-per-batch costs one write per batch. The database's `used` is thus
never below what was really granted: a Redis flush or restart resumes from it and at most the
unused part of the last block goes unsent in that window; a lost grant cannot exceed the quota."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db.types import utcnow
from wa_outbound.ratelimit import store

GROWTH_WINDOW_S = 1.0


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
            repr(limits.messages_per_second),
            limits.version_ms,
            1 if counter.remaining == 0 else 0,
            f"{counter.tat:.6f}",
        )


class Allotter:
    """Sizes blocks per org (in memory: only a hint) and commits them to the database."""

    def __init__(self, engine: AsyncEngine, defaults: store.Limits) -> None:
        self._engine = engine
        self._defaults = defaults
        self._last: dict[str, tuple[int, float]] = {}

    def _wanted(self, org_id: str, shortfall: int, mps: float) -> int:
        last = self._last.get(org_id)
        if last is None or time.monotonic() - last[1] > GROWTH_WINDOW_S:
            return shortfall
        return max(shortfall, min(2 * last[0], math.ceil(mps)))

    async def allot(self, org_id: str, shortfall: int, tat_floor: float) -> Allotment:
        now = utcnow()
        async with self._engine.begin() as conn:
            counter = await store.read_counter(
                conn, org_id, now=now, defaults=self._defaults, lock=True
            )
            wanted = self._wanted(org_id, shortfall, counter.limits.messages_per_second)
            block = min(wanted, counter.remaining)
            counter = replace(counter, used=counter.used + block, tat=max(counter.tat, tat_floor))
            await store.save_counter(conn, org_id, counter, now=now)
        if block:
            self._last[org_id] = (block, time.monotonic())
        return Allotment(block, counter)
