"""The runners: every started delivery is attempted, an attempt that raises does not stop its
runner, and stopping cancels the attempts still running after the grace period."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from wa_outbound.callbacks.claims import Claimed, Endpoint
from wa_outbound.callbacks.runners import Runners


def delivery(n: int) -> Claimed:
    endpoint_id = uuid.uuid4()
    return Claimed(
        uuid.uuid4(),
        endpoint_id,
        n,
        None,
        1,
        "w",
        uuid.uuid4(),
        "message.sent",
        datetime.now(UTC),
        "{}",
        Endpoint(endpoint_id, "https://a.example/", "s", None, None),
    )


async def test_every_delivery_is_attempted_and_a_failing_attempt_spares_its_runner() -> None:
    done: list[int] = []

    async def attempt(d: Claimed) -> None:
        await asyncio.sleep(0)
        if d.event_seq % 3 == 0:
            raise RuntimeError("a bug")
        done.append(d.event_seq)

    runners = Runners(2, attempt)
    runners.run()
    for n in range(1, 31):
        runners.start(delivery(n))
    for _ in range(100):
        await asyncio.sleep(0)
    assert sorted(done) == [n for n in range(1, 31) if n % 3]
    assert runners.take_started() == []
    await runners.stop(1.0)
    assert not runners.running


async def test_stop_cancels_the_attempts_still_running_after_the_grace() -> None:
    cancelled: list[int] = []

    async def attempt(d: Claimed) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(d.event_seq)
            raise

    runners = Runners(2, attempt)
    runners.run()
    for n in (1, 2, 3):
        runners.start(delivery(n))
    await asyncio.sleep(0.01)
    # Two runners: the third delivery waits, and is given back rather than attempted.
    assert [d.event_seq for d in runners.take_started()] == [3]
    await asyncio.wait_for(runners.stop(0.05), 5)
    assert sorted(cancelled) == [1, 2]
