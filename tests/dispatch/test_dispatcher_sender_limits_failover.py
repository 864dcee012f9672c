"""Redis stops while the dispatcher sends: the database limiter takes over at once and keeps
every sender's limits, measured at the fake Meta."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

from helpers import PrivateRedis, eventually
from sender_dispatch import most_in_any_window, sending_stack

PAIR_S = 0.3
# At the switch the database does not know what Redis granted in the last window (1.2 s) nor
# the last pair slot: limits are measured from then on.
SWITCH_S = 1.2


async def test_redis_stopping_mid_run_leaves_every_limit_to_the_database(
    postgres_url: str, private_redis: PrivateRedis
) -> None:
    async with sending_stack(
        postgres_url, private_redis.url, pair_interval_seconds=PAIR_S
    ) as stack:
        slow_phones = [f"+3361900{i:04d}" for i in range(40)]
        recipient = "+33619990001"
        warm = [f"+3361998{i:04d}" for i in range(2)]
        org = await stack.org(*slow_phones, recipient, *warm)
        slow = await stack.sender(org, messages_per_second=10)
        paced_sender = await stack.sender(org)
        await stack.warm_up(org, paced_sender, warm[1:])
        await stack.warm_up(org, slow, warm[:1])
        await asyncio.sleep(1.2)  # the warm-up send leaves the slow sender's window
        ids = await stack.queue_from(org, slow, *slow_phones)
        paced = []
        for _ in range(8):
            paced += await stack.queue_from(org, paced_sender, recipient)

        task = asyncio.create_task(stack.dispatcher.run(), name="test-dispatcher")
        try:
            await eventually(lambda: len(stack.arrivals(*slow_phones)) >= 10, timeout_s=10)
            private_redis.stop()
            stopped_at = time.monotonic()
            await eventually(
                lambda: len(stack.arrivals(*slow_phones, recipient)) == 48, timeout_s=30
            )
        finally:
            await stack.dispatcher.stop()
            await task
        assert stack.limiter.backend == "database"

        slow_at = stack.arrivals(*slow_phones)
        assert most_in_any_window([t for t in slow_at if t >= stopped_at + SWITCH_S]) <= 10
        assert most_in_any_window(slow_at) <= 20
        paced_at = [t for t in stack.arrivals(recipient) if t >= stopped_at + PAIR_S]
        assert len(paced_at) >= 3
        assert min(b - a for a, b in pairwise(paced_at)) >= PAIR_S - 0.05
        rows = await stack.rows(ids + paced)
        assert {(r["status"], r["attempts"]) for r in rows} == {("ACCEPTED", 1)}
        assert set((await stack.events(ids + paced, "claimed")).values()) == {1}
