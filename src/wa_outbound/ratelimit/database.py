"""The database limiter: the whole decision in one short transaction per call, under the org's
row lock. Used alone when Redis is not configured, and as the Redis limiter's fallback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.db.types import utcnow
from wa_outbound.events import record_audit
from wa_outbound.metrics import Metrics
from wa_outbound.orgs.organizations import DEFAULT_WINDOW_SECONDS
from wa_outbound.ratelimit import gcra, onestatement, plan, senderdb, store, throughput
from wa_outbound.ratelimit.decision import Backend, Decision
from wa_outbound.ratelimit.senders import SenderGroup, Verdict

PRUNE_EVERY_S = 600.0


def default_limits(settings: Settings) -> store.Limits:
    return store.Limits(
        quota_limit=settings.default_daily_quota,
        window_seconds=DEFAULT_WINDOW_SECONDS,
        messages_per_second=settings.default_messages_per_second,
    )


def decide(counter: store.Counter, n: int, now_s: float) -> tuple[store.Counter, int]:
    """Grant up to n under the quota and the per-second cap: (new counter, granted)."""
    mps = counter.limits.messages_per_second
    by_rate = gcra.allowed(counter.tat, now_s, mps)
    granted = max(0, min(n, by_rate, counter.remaining))
    tat = gcra.advance(counter.tat, now_s, mps, granted)
    return replace(counter, used=counter.used + granted, tat=tat), granted


def retry_after_s(after: store.Counter, n: int, granted: int, now_s: float) -> float:
    """When the next message could be granted, if fewer than n were: the per-second cap, or
    the window's reset when the quota is used up."""
    if granted >= n:
        return 0.0
    retry_s = gcra.next_allowed_in(after.tat, now_s, after.limits.messages_per_second)
    if after.remaining == 0:
        retry_s = max(retry_s, after.resets_at.timestamp() - now_s)
    return retry_s


class DatabaseLimiter:
    """Implements `RateLimiter` on the database alone."""

    backend: Backend = "database"

    def __init__(self, engine: AsyncEngine, settings: Settings, metrics: Metrics) -> None:
        self.engine = engine
        self.defaults = default_limits(settings)
        self.pair_interval_s = throughput.pair_spacing_s(settings.pair_interval_seconds)
        self._decisions = DecisionCounter(metrics, "database")
        self._pruned_at = time.monotonic()
        self._one_statement = onestatement.OneStatement(engine)

    async def admit(self, group: SenderGroup) -> Mapping[uuid.UUID, Verdict]:
        return (await self.admit_many([group]))[0]

    async def admit_many(self, groups: list[SenderGroup]) -> list[Mapping[uuid.UUID, Verdict]]:
        """Every limit of a batch's sender groups in one transaction and a few statements (see
        plan.py and senderdb.py), the groups decided one after another in their order. Locks
        are taken in one order by every decision: the senders', the WABAs', then the orgs'
        counters, each by id."""
        asked = [group for group in groups if group.rows]
        if not asked:
            return [{} for _ in groups]
        now = utcnow()
        now_s = now.timestamp()
        decided: dict[int, plan.Plan] = {}
        async with self.engine.begin() as conn:
            state = await senderdb.read_batch(conn, asked, now, pairs=self.pair_interval_s > 0)
            counters = {
                org_id: await store.read_counter(
                    conn, org_id, now=now, defaults=self.defaults, lock=True, relaxed=True
                )
                for org_id in sorted({row.org_id for group in asked for row in group.rows})
            }
            consumed: set[str] = set()

            async def quota_room(org_id: str, n: int) -> tuple[int, float]:
                after, granted = decide(counters[org_id], n, now_s)
                return granted, retry_after_s(after, n, granted, now_s)

            async def consume_quota(org_id: str, k: int) -> None:
                counters[org_id] = decide(counters[org_id], k, now_s)[0]
                consumed.add(org_id)

            for group in asked:
                decided[id(group)] = made = await plan.decide(
                    group,
                    state.state_of(group),
                    now_s=now_s,
                    pair_interval_s=self.pair_interval_s,
                    quota_room=quota_room,
                    consume_quota=consume_quota,
                )
                state.apply(group, made, now_s)
            await senderdb.write_batch(conn, state, now)
            for org_id in sorted(consumed):
                await store.save_counter(conn, org_id, counters[org_id], now=now)
        results: list[Mapping[uuid.UUID, Verdict]] = []
        for group in groups:
            done = decided.get(id(group))
            if done is None:
                results.append({})
                continue
            self._decisions.count(len(group.rows), len(done.granted))
            results.append(done.verdicts)
        await self.maybe_prune()
        return results

    async def maybe_prune(self) -> None:
        """Every `PRUNE_EVERY_S`: drop pair slots and reaches no decision can need again."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        async with self.engine.begin() as conn:
            await senderdb.prune(conn, utcnow())

    async def acquire(self, org_id: str, n: int) -> Decision:
        if n <= 0:
            return Decision(0, 0.0, "database")
        now = utcnow()
        decided = None
        if self.engine.dialect.name == "postgresql":
            decided = await self._one_statement.decide(org_id, n, now)
        if decided is None:
            async with self.engine.begin() as conn:
                counter = await store.read_counter(
                    conn, org_id, now=now, defaults=self.defaults, lock=True, relaxed=True
                )
                decided = decide(counter, n, now.timestamp())
                if decided[1]:
                    await store.save_counter(conn, org_id, decided[0], now=now)
        after, granted = decided
        self._decisions.count(n, granted)
        return Decision(granted, retry_after_s(after, n, granted, now.timestamp()), "database")

    async def quota(self, org_id: str) -> dict[str, Any]:
        now = utcnow()
        async with self.engine.connect() as conn:
            counter = await store.read_counter(
                conn, org_id, now=now, defaults=self.defaults, lock=False
            )
        return store.quota_body(org_id, counter, used=counter.used, now=now, backend="database")

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
        async with self.engine.begin() as conn:
            counter = await self.reconfigure(
                conn,
                org_id,
                now=now,
                changes=(limit, window_seconds, messages_per_second),
                actor=actor,
            )
        return store.quota_body(org_id, counter, used=counter.used, now=now, backend="database")

    async def reconfigure(
        self,
        conn: AsyncConnection,
        org_id: str,
        *,
        now: datetime,
        changes: tuple[int | None, int | None, float | None],
        actor: str,
    ) -> store.Counter:
        """Apply new limits under the org's row lock and audit them; the caller commits."""
        counter = await store.read_counter(conn, org_id, now=now, defaults=self.defaults, lock=True)
        before = counter.limits
        limit, window_seconds, mps = changes
        after = store.Limits(
            quota_limit=before.quota_limit if limit is None else limit,
            window_seconds=before.window_seconds if window_seconds is None else window_seconds,
            messages_per_second=before.messages_per_second if mps is None else mps,
        )
        after = await store.update_limits(conn, org_id, after, now=now)
        await record_audit(
            conn,
            org_id=org_id,
            at=now,
            action="rate_limit.updated",
            actor=actor,
            subject=org_id,
            details={
                "before": _limits_view(before),
                "after": _limits_view(after),
            },
        )
        counter = replace(counter, limits=after)
        if counter.stored and now >= counter.resets_at:
            counter = replace(counter, window_started_at=now, used=0)
        return counter

    def health(self) -> dict[str, Any]:
        return {"backend": "database", "redis": {"status": "disabled"}}

    async def close(self) -> None:
        await self._one_statement.close()


def _limits_view(limits: store.Limits) -> dict[str, Any]:
    return {
        "limit": limits.quota_limit,
        "window_seconds": limits.window_seconds,
        "messages_per_second": limits.messages_per_second,
    }


class DecisionCounter:
    """`outbound_ratelimit_decisions_total{backend,result}`, its children looked up once."""

    def __init__(self, metrics: Metrics, backend: Backend) -> None:
        counter = metrics.ratelimit_decisions
        self._granted = counter.labels(backend=backend, result="granted")
        self._partial = counter.labels(backend=backend, result="partial")
        self._denied = counter.labels(backend=backend, result="denied")

    def count(self, n: int, granted: int) -> None:
        if granted >= n:
            self._granted.inc()
        elif granted:
            self._partial.inc()
        else:
            self._denied.inc()
