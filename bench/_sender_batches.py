"""The rate limiter's per-batch decision, as the dispatcher makes it: a claimed batch of 100
messages over 20 senders (4 per org, 5 orgs) and 100 recipients, asked once per sender
(`dispatch.admission.admit`), beside the baseline of the same batch asked once per org
(`RateLimiter.acquire`, the decision before senders). Redis round trips are counted on the
limiter's lane, the one connection set its calls travel."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.admission import Holds, admit
from wa_outbound.dispatch.due import Due
from wa_outbound.ratelimit import RateLimiter, RedisLimiter

ORGS, SENDERS_PER_ORG, MESSAGES = 5, 4, 100
UNLIMITED_MPS = 1e9  # every decision grants: what is measured is the decision's cost


class Batches:
    """Fresh batches of the shape above; each batch's 100 recipients are new, so pair pacing
    (and its keys) is exercised and never refuses."""

    def __init__(self, org_ids: list[str]) -> None:
        self.senders = [
            (uuid.uuid4(), org_id) for org_id in org_ids for _ in range(SENDERS_PER_ORG)
        ]
        self._numbers = itertools.count()
        self._ids = itertools.count(1)
        self._ready: list[list[Due]] = []

    def prepare(self, count: int) -> None:
        """Make the next `count` batches now, so that a sample times the decision alone."""
        self._ready = [self._make() for _ in range(count)]
        self._ready.reverse()

    def batch(self) -> list[Due]:
        return self._ready.pop() if self._ready else self._make()

    def _make(self) -> list[Due]:
        now = utcnow()
        rows = []
        for i in range(MESSAGES):
            sender_id, org_id = self.senders[i % len(self.senders)]
            rows.append(
                Due(
                    uuid.UUID(int=next(self._ids)),  # cheaper than uuid4: the bench times admit
                    org_id,
                    sender_id,
                    to=f"+1{next(self._numbers):011d}",
                    created_at=now,
                    phone_number_id=str(sender_id.int % 10**15),
                    messages_per_second=UNLIMITED_MPS,
                )
            )
        return rows


def count_round_trips(limiter: RedisLimiter) -> Callable[[], int]:
    """Wraps the limiter's lane so every round trip it makes to Redis is counted (a pipelined
    set of calls is one); returns the reader. A single Redis server's (standalone) only."""
    # A bench may look inside: it measures the internals.
    lane = limiter._scripts.router._the_lane  # type: ignore[attr-defined]
    trips = 0
    call, call_many = lane.call, lane.call_many

    async def counted(command: bytes) -> Any:
        nonlocal trips
        trips += 1
        return await call(command)

    async def counted_many(commands: list[bytes]) -> list[Any]:
        nonlocal trips
        trips += 1
        return await call_many(commands)

    lane.call = counted
    lane.call_many = counted_many
    return lambda: trips


def per_sender(limiter: RateLimiter, batches: Batches) -> Callable[[int], Awaitable[object]]:
    senders: Holds[uuid.UUID] = Holds()
    orgs: Holds[str] = Holds()

    async def call(_: int) -> object:
        due = batches.batch()
        admission = await admit(limiter, due, senders=senders, orgs=orgs, now=utcnow())
        assert len(admission.granted) == MESSAGES, "the bench's limits must grant everything"
        return admission

    return call


def per_org(limiter: RateLimiter, batches: Batches) -> Callable[[int], Awaitable[object]]:
    """The decision before senders: one acquire per org of the batch."""

    async def call(_: int) -> object:
        due = batches.batch()
        by_org: dict[str, int] = {}
        for row in due:
            by_org[row.org_id] = by_org.get(row.org_id, 0) + 1
        decisions = await asyncio.gather(*(limiter.acquire(o, n) for o, n in by_org.items()))
        assert sum(d.granted for d in decisions) == MESSAGES
        return decisions

    return call


async def round_trips_per_batch(
    call: Callable[[int], Awaitable[object]], counter: Callable[[], int], batches: int = 50
) -> float:
    before = counter()
    for _ in range(batches):
        await call(0)
    return (counter() - before) / batches


async def profile(
    call: Callable[[int], Awaitable[object]], client: Redis, *, callers: int, batches: int
) -> dict[str, float]:
    """`batches` batches over `callers` tasks: messages/s, and per batch this process's CPU,
    Redis's CPU (every client of that Redis: the machine is shared) and its EVALSHA calls."""
    per_caller = max(1, batches // callers)
    stats, cpu = await client.info("commandstats"), await client.info("cpu")
    started, python_s = time.perf_counter(), time.process_time()

    async def caller(index: int) -> None:
        for _ in range(per_caller):
            await call(index)

    await asyncio.gather(*(caller(i) for i in range(callers)))
    elapsed_s, python_s = time.perf_counter() - started, time.process_time() - python_s
    stats_after, cpu_after = await client.info("commandstats"), await client.info("cpu")
    done = per_caller * callers

    def redis_s(info: dict[str, Any]) -> float:
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    evalsha = stats_after.get("cmdstat_evalsha", {})
    before = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    calls = evalsha.get("calls", 0) - before["calls"]
    return {
        "messages_per_s": done * MESSAGES / elapsed_s,
        "python_cpu_us": python_s / done * 1e6,
        "redis_cpu_us": (redis_s(cpu_after) - redis_s(cpu)) / done * 1e6,
        "evalsha_per_batch": calls / done,
        "evalsha_us": (evalsha.get("usec", 0) - before["usec"]) / max(1, calls),
    }
