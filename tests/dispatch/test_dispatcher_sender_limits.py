"""Meta's limits per sender, end to end: the dispatcher with the real limiter (Redis, or the
database on PostgreSQL and SQLite) sending through the fake Meta, measured where Meta would
measure them, at the fake's arrival times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from itertools import pairwise

import pytest

from sender_dispatch import (
    Stack,
    forget_keys,
    most_in_any_window,
    on_the_wall_clock,
    sending_stack,
)
from wa_outbound.db.schema import service_window
from wa_outbound.db.types import utcnow

PAIR_S = 0.3


@pytest.fixture(params=["redis", "postgres", "sqlite"])
def urls(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, Redis URL or "") of each limiter backend."""
    name = request.param
    url: str = request.getfixturevalue("sqlite_url" if name == "sqlite" else "postgres_url")
    redis_url: str = request.getfixturevalue("redis_url") if name == "redis" else ""
    return url, redis_url


@pytest.fixture
async def stack(urls: tuple[str, str]) -> AsyncIterator[Stack]:
    url, redis_url = urls
    async with sending_stack(url, redis_url, pair_interval_seconds=PAIR_S) as made:
        yield made
        if redis_url:
            await forget_keys(redis_url, *made.orgs)


async def test_a_sender_at_10_per_second_never_exceeds_10_in_any_second_at_meta(
    stack: Stack,
) -> None:
    slow_phones = [f"+3361100{i:04d}" for i in range(35)]
    fast_phones = [f"+3361200{i:04d}" for i in range(150)]
    warm = [f"+3361300{i:04d}" for i in range(64)]
    org = await stack.org(*slow_phones, *fast_phones, *warm)
    slow = await stack.sender(org, messages_per_second=10)
    fast = await stack.sender(org, messages_per_second=1000)
    await stack.warm_up(org, fast, warm[1:])
    await stack.warm_up(org, slow, warm[:1])
    await asyncio.sleep(1.2)  # the slow sender's warm-up send leaves its window
    ids = await stack.queue_from(org, slow, *slow_phones)
    ids += await stack.queue_from(org, fast, *fast_phones)
    await stack.run_until_accepted(ids)

    slow_at, fast_at = stack.arrivals(*slow_phones), stack.arrivals(*fast_phones)
    assert len(slow_at) == 35
    granted = await stack.claimed_at(ids[:35])
    assert most_in_any_window(list(granted.values()), 1.1) <= 10, "the limiter's own bound"
    # Grants are 1.1 s apart: the 0.1 s margin covers a varying delay from a grant to Meta. On a
    # loaded machine the delay varies more (CI once saw a whole window's sends 0.6 s late, and
    # SQLite's single writer claims big batches slowly): the bound at Meta then holds over a
    # window shortened by the variation measured, the full second when it is within the margin.
    delays = [
        stack.arrived_at(phone) - granted[i] for i, phone in zip(ids[:35], slow_phones, strict=True)
    ]
    window_s = min(1.0, max(1.1 - (max(delays) - min(delays)), 0.2))
    arrivals = str([round(t - slow_at[0], 3) for t in slow_at])
    assert most_in_any_window(slow_at, window_s) <= 10, (window_s, arrivals)
    spans = max(granted.values()) - min(granted.values()), max(slow_at) - min(slow_at)
    assert spans[0] >= 3.0, "35 at 10 per 1.1 s are granted over more than three seconds"
    # At Meta the span shrinks by what the delay varies beyond the margin (CI: 2.8 s once).
    assert spans[1] >= 3.0 - max(0.0, max(delays) - min(delays) - 0.1), (spans, delays)
    assert len(fast_at) == 150
    fast_span = max(fast_at) - min(fast_at)
    assert 150 / max(fast_span, 0.001) > 50, "the other sender is not slowed to 10/s"
    assert max(fast_at) < min(slow_at) + 2.0, "it finishes long before the slow one"
    throttled = stack.metrics.registry.get_sample_value(
        "outbound_sender_throttled_total",
        {"sender": await stack.phone_number_id(slow), "reason": "throughput"},
    )
    assert throttled is not None
    assert throttled > 0
    rows = await stack.rows(ids)
    assert all(r["attempts"] == 1 for r in rows), "a throughput wait uses no attempt"


async def test_messages_to_one_recipient_are_spaced_in_queue_order_and_others_are_not(
    stack: Stack,
) -> None:
    recipient = "+33613000001"
    others = [f"+3361400{i:04d}" for i in range(20)]
    warm = [f"+3361410{i:04d}" for i in range(8)]
    org = await stack.org(recipient, *others, *warm)
    sender_id = await stack.sender(org)
    await stack.warm_up(org, sender_id, warm)
    paced = []
    for _ in range(20):  # one at a time: each is created after the one before
        paced += await stack.queue_from(org, sender_id, recipient)
    rest = await stack.queue_from(org, sender_id, *others)

    # The first round sends one message to the recipient and every other; the rest of the
    # recipient's messages wait, written once with their slot, and use no attempt.
    assert await stack.dispatcher.run_once() == 21
    rows = await stack.rows(paced)
    assert rows[0]["status"] == "ACCEPTED"
    held = rows[1:]
    assert {(r["status"], r["attempts"], r["waiting_reason"]) for r in held} == {
        ("QUEUED", 0, "pair_interval")
    }
    slots = [r["next_attempt_at"] for r in held]
    assert slots == sorted(slots), "oldest first"
    gaps = [(b - a).total_seconds() for a, b in pairwise(slots)]
    assert all(gap == pytest.approx(PAIR_S + 0.1, abs=0.01) for gap in gaps), "+ 0.1 s margin"
    assert await stack.dispatcher.run_once() == 0, "nothing is claimed before its slot"
    assert await stack.accepted(rest) == 20

    await stack.run_until_accepted(paced)
    arrivals = stack.arrivals(recipient)
    assert len(arrivals) == 20
    granted = await stack.claimed_at(paced)
    claims = [granted[i] for i in paced]
    assert min(b - a for a, b in pairwise(claims)) >= PAIR_S, "the limiter's own spacing"
    # Grants are PAIR_S + 0.1 s apart; at Meta the spacing holds within the margin when the
    # grant-to-arrival delay varies by less than 0.1 s, and loses what it varies beyond that on
    # a loaded machine (measured: one send 0.3 s late, the next not).
    delays = [on_the_wall_clock(at) - claim for at, claim in zip(arrivals, claims, strict=True)]
    beyond_margin = max(0.0, max(delays) - min(delays) - 0.1)
    spacing = [b - a for a, b in pairwise(arrivals)]
    assert min(spacing) >= PAIR_S - 0.05 - beyond_margin, (spacing, delays)
    others_at = stack.arrivals(*others)
    assert max(others_at) - min(others_at) < 1.0, "other recipients were not slowed"
    final = await stack.rows(paced)
    wamids = [r.wamid for r in stack.fake.received.requests_for(recipient)]
    order = [r["provider_message_id"] for r in final]
    assert wamids == order, [order.index(w) for w in wamids]
    assert all(r["attempts"] == 1 and r["waiting_reason"] is None for r in final)
    assert set((await stack.events(paced, "claimed")).values()) == {1}, "each claimed once"
    assert (await stack.events(paced, "pair_limited"))[paced[5]] >= 1


async def test_the_messaging_limit_holds_new_recipients_beyond_the_cap(stack: Stack) -> None:
    reached = [f"+3361500{i:04d}" for i in range(3)]
    beyond = [f"+3361600{i:04d}" for i in range(2)]
    in_window = "+33617000001"
    org = await stack.org(*reached, *beyond, in_window)
    # A tiny cap, written straight into the WABA row (the limiter reads a number as itself).
    sender_id = await stack.sender(org, messaging_limit="3")
    async with stack.engine.begin() as conn:
        await conn.execute(
            service_window.insert().values(
                org_id=org, sender_id=sender_id, phone=in_window, last_inbound_at=utcnow()
            )
        )
    first = []
    for phone in (*reached, *beyond, in_window):  # one at a time: in this order of age
        first += await stack.queue_from(org, sender_id, phone)
    assert await stack.dispatcher.run_once() == 4
    rows = await stack.rows(first)
    assert [r["status"] for r in rows] == ["ACCEPTED"] * 3 + ["QUEUED"] * 2 + ["ACCEPTED"]
    for row in rows[3:5]:
        assert (row["attempts"], row["waiting_reason"]) == (0, "messaging_limit")
        wait = row["next_attempt_at"] - utcnow()
        assert timedelta(seconds=1) < wait <= timedelta(seconds=301)
    assert set((await stack.events(first[3:5], "tier_limited")).values()) == {1}
    assert await stack.dispatcher.run_once() == 0, "not claimed again before its time"

    # A recipient already reached costs nothing more.
    again = await stack.queue_from(org, sender_id, reached[0])
    again += await stack.queue_from(org, sender_id, beyond[0])
    # reached[0] waits for its pair slot (PAIR_S after its first send) unless that has already
    # passed on a slow machine; beyond[0] is never claimed: the cap holds it.
    assert await stack.dispatcher.run_once() in (0, 1)
    await stack.run_until_accepted(again[:1], timeout_s=10)
    second = await stack.rows(again)
    assert second[0]["status"] == "ACCEPTED"
    assert (second[1]["status"], second[1]["waiting_reason"]) == ("QUEUED", "messaging_limit")
