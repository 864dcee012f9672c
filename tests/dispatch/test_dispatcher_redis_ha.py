"""The dispatcher on a Redis Cluster and behind Sentinel (engines of the session's own) while the
master deciding its org is killed mid-run and its replica promoted: the database limiter decides
meanwhile, Redis again after, every message is sent once and the sender's throughput holds,
measured at the fake Meta."""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from helpers import eventually
from redis_engines import SENTINEL_NAME, Cluster, Engines, SentinelGroup, fail_over
from sender_dispatch import most_in_any_window, sending_stack
from wa_outbound.ratelimit import RedisLimiter
from wa_outbound.ratelimit.scripts import keys

pytestmark = pytest.mark.slow

# At a switch (to the database, and back) the backend that takes over does not know what the
# other granted in the last window (1.2 s): the sender's throughput is measured apart from then.
SWITCH_S = 1.2


@contextmanager
def switches() -> Iterator[list[float]]:
    """When the limiter's backend changed (monotonic seconds), from its own log lines: the
    dispatcher may go back to Redis before the test's own grant does (a clean-clone CI run: its
    probe passed mid-run and Redis, not knowing the database's last window, granted ten more)."""
    seen: list[float] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(time.monotonic())

    logger = logging.getLogger("wa_outbound.ratelimit.failover")
    handler = Handler(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def steady(times: list[float], switched_at: list[float]) -> list[list[float]]:
    """`times` cut at each switch, less the SWITCH_S after it: the runs one backend decided."""
    starts = [float("-inf"), *sorted(switched_at)]
    runs: list[list[float]] = [[] for _ in starts]
    for at in times:
        run = bisect_right(starts, at) - 1
        if at >= starts[run] + SWITCH_S:
            runs[run].append(at)
    return runs


async def dispatch_through_a_failover(
    postgres_url: str, redis_url: str, engines: Engines, **redis: Any
) -> None:
    with switches() as switched_at:
        await dispatch_and_measure(postgres_url, redis_url, engines, switched_at, **redis)


async def dispatch_and_measure(
    postgres_url: str, redis_url: str, engines: Engines, switched_at: list[float], **redis: Any
) -> None:
    async with sending_stack(postgres_url, redis_url, **redis) as stack:
        phones = [f"+3362000{i:04d}" for i in range(40)]
        later = [f"+3362100{i:04d}" for i in range(5)]
        warm = ["+33621990001"]
        org = await stack.org(*phones, *later, *warm)
        slow = await stack.sender(org, messages_per_second=10)
        await stack.warm_up(org, slow, warm)
        await asyncio.sleep(1.2)  # the warm-up send leaves the sender's window
        ids = await stack.queue_from(org, slow, *phones)
        limiter = stack.limiter
        assert isinstance(limiter, RedisLimiter)

        task = asyncio.create_task(stack.dispatcher.run(), name="test-dispatcher")
        try:
            await eventually(lambda: len(stack.arrivals(*phones)) >= 10, timeout_s=10)
            master, replica = engines.master_of(keys(org)[0])
            killed_at = time.monotonic()
            failover = asyncio.create_task(
                asyncio.to_thread(fail_over, engines, keys(org)[0], master, replica)
            )
            await eventually(lambda: limiter.backend == "database", timeout_s=10)
            await eventually(lambda: len(stack.arrivals(*phones)) == 40, timeout_s=30)
            timings = await failover
            # Redis decides again once the promoted master has its replica back. The client finds
            # the new topology on its next refresh: a probe may still reach the killed master
            # first (a clean-clone CI run saw one refused connection). And a probe may pass while
            # the replica (the killed master, restarted) still resyncs: the next grant's WAIT then
            # times out and the database decides again (another CI run). Back means a grant the
            # replica confirmed.
            for _ in range(50):
                if await limiter.probe() and (await limiter.acquire(org, 1)).backend == "redis":
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("Redis never decided again after the failover")
            back_at = time.monotonic()
            ids += await stack.queue_from(org, slow, *later)
            await eventually(lambda: len(stack.arrivals(*later)) == 5, timeout_s=10)
        finally:
            await stack.dispatcher.stop()
            await task
        print(
            f"promoted {timings['promoted'] - killed_at:.2f} s after the kill, "
            f"whole again after {timings['whole'] - killed_at:.2f} s, "
            f"the limiter switched at {[round(t - killed_at, 2) for t in switched_at]} s"
        )

        sent = stack.arrivals(*phones, *later)
        assert len(sent) == 45  # each once
        assert len(switched_at) >= 2  # to the database and back, at least
        assert killed_at <= switched_at[0] < back_at
        runs = steady(sent, [killed_at, *switched_at])
        for run in runs:
            assert most_in_any_window(run) <= 10, (switched_at, runs)
        assert any(switched_at[0] < t < switched_at[1] for t in sent)  # on the database
        assert most_in_any_window(sent) <= 20
        rows = await stack.rows(ids)
        assert {(r["status"], r["attempts"]) for r in rows} == {("ACCEPTED", 1)}
        assert set((await stack.events(ids, "claimed")).values()) == {1}


async def test_a_cluster_master_killed_mid_run_hands_the_sender_to_the_database_and_back(
    postgres_url: str, redis_cluster: Cluster
) -> None:
    await dispatch_through_a_failover(
        postgres_url, redis_cluster.url, redis_cluster, redis_mode="cluster"
    )


async def test_a_sentinel_master_killed_mid_run_hands_the_sender_to_the_database_and_back(
    postgres_url: str, redis_sentinel: SentinelGroup
) -> None:
    await dispatch_through_a_failover(
        postgres_url,
        "",
        redis_sentinel,
        redis_mode="sentinel",
        redis_sentinels=redis_sentinel.addresses,
        redis_sentinel_master=SENTINEL_NAME,
    )
