"""The Redis limiter: one EVALSHA per decision, quota written ahead to the database in blocks
(allotment.py), and the database limiter deciding whenever Redis does not answer.

Failover: any Redis error or timeout sends that call and the following ones to the database at
once; Redis is probed in the background with a doubling back-off and decides again as soon as it
answers. Both backends count against the same database row, so replicas that disagree about
Redis's health still never grant more than the quota between them."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import store
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.database import DatabaseLimiter, DecisionCounter
from wa_outbound.ratelimit.decision import Backend, Decision
from wa_outbound.ratelimit.failover import RedisHealth
from wa_outbound.ratelimit.redis_groups import RedisGroups
from wa_outbound.ratelimit.routing import create_router
from wa_outbound.ratelimit.scripts import Scripts, sender_tag
from wa_outbound.ratelimit.senders import AllGranted, SenderGroup, Verdict
from wa_outbound.ratelimit.topology import RedisTarget, redis_client

log = logging.getLogger(__name__)

REDIS_DOWN = (RedisError, OSError)  # OSError covers TimeoutError and refused connections
MAX_REFILLS = 3
PROBE_TIMEOUT_S = 0.5


class RedisLimiter:
    """Implements `RateLimiter` on Redis with the database as fallback."""

    def __init__(
        self,
        target: RedisTarget | str,
        database: DatabaseLimiter,
        allotter: Allotter,
        metrics: Metrics,
        *,
        backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        if isinstance(target, str):
            target = RedisTarget(target)
        self._scripts = Scripts(redis_client(target), create_router(target))
        self._database = database
        self._allotter = allotter
        self._decisions = DecisionCounter(metrics, "redis")
        self._redis = RedisHealth(metrics, backoff_s)
        self._probe: asyncio.Task[bool] | None = None
        # Orgs whose limits changed while Redis was unreachable: resynced when it answers.
        self._stale: set[str] = set()
        # WABAs whose reached recipients the database granted meanwhile: Redis reloads them.
        self._stale_reach: set[tuple[str, str]] = set()
        self._groups = RedisGroups(
            self._scripts,
            allotter,
            database.engine,
            pair_interval_s=database.pair_interval_s,
            acquire=self.acquire,
        )

    @property
    def backend(self) -> Backend:
        return "redis" if self._redis.up else "database"

    async def acquire(self, org_id: str, n: int) -> Decision:
        if n <= 0:
            return Decision(0, 0.0, self.backend)
        if self._redis.up:
            try:
                result = await self._scripts.acquire(org_id, n, time.time())
                if result.__class__ is int:  # all n granted: the common case, kept short
                    self._decisions.count(n, n)
                    return Decision(n, 0.0, "redis")
                return await self._refill_and_decide(org_id, n, result)
            except REDIS_DOWN as exc:
                self._redis.mark_down(exc)
        else:
            self._schedule_probe()
        return await self._database.acquire(org_id, n)

    async def admit(self, group: SenderGroup) -> Mapping[uuid.UUID, Verdict]:
        return (await self.admit_many([group]))[0]

    async def admit_many(self, groups: list[SenderGroup]) -> list[Mapping[uuid.UUID, Verdict]]:
        if self._redis.up:
            try:
                results = await self._groups.admit_many(groups)
                for group, verdicts in zip(groups, results, strict=True):
                    if verdicts.__class__ is AllGranted:
                        granted = len(group.rows)
                    else:
                        granted = sum(1 for v in verdicts.values() if v.reason is None)
                    self._decisions.count(len(group.rows), granted)
                await self._database.maybe_prune()
                return results
            except REDIS_DOWN as exc:
                self._redis.mark_down(exc)
        else:
            self._schedule_probe()
        for group in groups:
            if group.cap is not None and group.waba_id and any(r.reaches for r in group.rows):
                tag = sender_tag(group.org_id, str(group.sender_id))
                self._stale_reach.add((tag, group.waba_id))
        return await self._database.admit_many(groups)

    async def _refill_and_decide(self, org_id: str, n: int, result: Any) -> Decision:
        """Redis lacks quota for this decision: allot more from the database and decide again."""
        for _ in range(MAX_REFILLS):
            if result.__class__ is int or result[0] >= 0:
                break
            allotment = await self._allotter.allot(org_id, result[1], result[2] / 1e6)
            result = await self._scripts.acquire(org_id, n, time.time(), *allotment.argv())
        if result.__class__ is int:
            granted, retry_s = n, 0.0
        elif result[0] >= 0:
            granted, retry_s = result[0], result[1] / 1_000_000
        else:
            # The allotments kept missing the window (clocks at its very edge): grant nothing.
            granted, retry_s = 0, 0.05
        self._decisions.count(n, granted)
        return Decision(granted, retry_s, "redis")

    async def quota(self, org_id: str) -> dict[str, Any]:
        now = utcnow()
        async with self._database.engine.connect() as conn:
            counter = await store.read_counter(
                conn, org_id, now=now, defaults=self._database.defaults, lock=False
            )
        used = counter.used
        if self._redis.up and counter.stored:
            try:
                seen = await self._scripts.inspect(org_id)
            except REDIS_DOWN as exc:
                self._redis.mark_down(exc)
                seen = None
            if seen is not None and seen[2] == store.to_ms(counter.window_started_at):
                # The database counts Redis's whole allotment; show only what was granted.
                used_here, allot, _ = seen
                used = max(0, used - max(0, allot - used_here))
        return store.quota_body(org_id, counter, used=used, now=now, backend=self.backend)

    async def configure(
        self,
        org_id: str,
        *,
        limit: int | None,
        window_seconds: int | None,
        messages_per_second: float | None,
        actor: str,
    ) -> dict[str, Any]:
        now = utcnow()
        async with self._database.engine.begin() as conn:
            counter = await self._database.reconfigure(
                conn,
                org_id,
                now=now,
                changes=(limit, window_seconds, messages_per_second),
                actor=actor,
            )
            counter = await self._resync(conn, org_id, counter, now)
        return store.quota_body(org_id, counter, used=counter.used, now=now, backend=self.backend)

    async def _resync(
        self, conn: AsyncConnection, org_id: str, counter: store.Counter, now: datetime
    ) -> store.Counter:
        """Under the org's row lock: take Redis's unused allotment back into the database and
        make Redis load the limits afresh, so a change applies to the very next decision."""
        if not self._redis.up:
            self._stale.add(org_id)
            return counter
        try:
            unused, start_ms = await self._scripts.revoke(org_id, counter.limits)
        except REDIS_DOWN as exc:
            self._redis.mark_down(exc)
            self._stale.add(org_id)
            return counter
        self._stale.discard(org_id)
        if unused > 0 and counter.stored and start_ms == store.to_ms(counter.window_started_at):
            counter = replace(counter, used=max(0, counter.used - unused))
            await store.save_counter(conn, org_id, counter, now=now)
        return counter

    def health(self) -> dict[str, Any]:
        self._schedule_probe()
        return {"backend": self.backend, "redis": self._redis.view()}

    async def probe(self) -> bool:
        """Ask Redis once (every master of a cluster; the master Sentinel names now, with the
        replicas that must confirm grants); on an answer, decide there again and resync what
        changed meanwhile."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._scripts.router.check()
        except REDIS_DOWN as exc:
            self._redis.probe_failed(exc)
            return False
        self._redis.mark_up()
        for tag, waba_id in list(self._stale_reach):
            try:
                await self._scripts.forget_reach(tag, waba_id)
                self._stale_reach.discard((tag, waba_id))
            except REDIS_DOWN as exc:
                self._redis.mark_down(exc)
                return False
        for org_id in list(self._stale):
            now = utcnow()
            try:
                async with self._database.engine.begin() as conn:
                    counter = await store.read_counter(
                        conn, org_id, now=now, defaults=self._database.defaults, lock=True
                    )
                    await self._resync(conn, org_id, counter, now)
            except Exception:
                # Stays stale: retried at the next recovery; Redis re-reads limits every minute.
                log.exception("could not resync rate limits", extra={"org_id": org_id})
        return self._redis.up

    def _schedule_probe(self) -> None:
        idle = self._probe is None or self._probe.done()
        if idle and self._redis.probe_due:
            self._probe = asyncio.get_running_loop().create_task(
                self.probe(), name="ratelimit-redis-probe"
            )

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self._scripts.router.close()
        await self._scripts.client.aclose()
        await self._database.close()
