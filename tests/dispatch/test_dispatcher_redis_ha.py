"""The dispatcher on a Redis Cluster and behind Sentinel (engines of the session's own) while the
master deciding its org is killed mid-run and its replica promoted: the database limiter decides
meanwhile, Redis again after, every message is sent once and the sender's throughput holds,
measured at the fake Meta."""

from __future__ import annotations

import asyncio
import time
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


async def dispatch_through_a_failover(
    postgres_url: str, redis_url: str, engines: Engines, **redis: Any
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
            f"whole again after {timings['whole'] - killed_at:.2f} s"
        )

        sent = stack.arrivals(*phones, *later)
        assert len(sent) == 45  # each once
        on_database = [t for t in sent if killed_at + SWITCH_S <= t < back_at]
        assert most_in_any_window(on_database) <= 10
        assert most_in_any_window([t for t in sent if t >= back_at + SWITCH_S]) <= 10
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
