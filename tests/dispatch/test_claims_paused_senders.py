"""The claim skips paused senders' messages, marked or not, and takes them again on resume."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sender_dispatch import Stack, sending_stack
from wa_outbound.db.types import utcnow
from wa_outbound.senders import health


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with sending_stack(database_url) as made:
        yield made


async def test_a_paused_sender_s_messages_are_not_claimed_until_it_resumes(stack: Stack) -> None:
    phones = [f"+3361800{i:04d}" for i in range(6)]
    org = await stack.org(*phones)
    paused = await stack.sender(org)
    active = await stack.sender(org)
    before = await stack.queue_from(org, paused, *phones[:2])
    async with stack.engine.begin() as conn:
        await health.add_reason(conn, "manual", now=utcnow(), actor="test", sender_ids=[paused])
    # Queued after the pause: not marked `sender_paused`, still skipped by the claim.
    after = await stack.queue_from(org, paused, *phones[2:4])
    others = await stack.queue_from(org, active, *phones[4:])

    assert await stack.dispatcher.run_once() == 2
    assert await stack.accepted(others) == 2
    rows = await stack.rows(before + after)
    assert {(r["status"], r["attempts"]) for r in rows} == {("QUEUED", 0)}
    assert [r["waiting_reason"] for r in rows] == ["sender_paused"] * 2 + [None] * 2
    assert await stack.dispatcher.run_once() == 0

    async with stack.engine.begin() as conn:
        await health.remove_reasons(conn, None, now=utcnow(), actor="test", sender_ids=[paused])
    assert await stack.dispatcher.run_once() == 4
    assert await stack.accepted(before + after) == 4
