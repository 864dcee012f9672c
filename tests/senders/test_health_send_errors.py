"""Sender health on send errors, with the dispatcher against the fake Graph API (several numbers,
each with its own token): a token error pauses only its sender, an account error every sender
of the WABA; the messages that met the error, and the paused senders' others, wait with their
attempts intact while other senders' messages go; resuming sends them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import Clock, event_types, new_org, queue
from factories import insert_sender
from fake_meta import FakeMeta, meta_error, running_fake_meta
from helpers import make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import outbound_message, sender
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.senders import health
from wa_outbound.whatsapp.cloud import CloudProvider

# Two numbers of one WABA, one of another.
A, A2, B = "1110000001", "1110000002", "2220000003"
WABA_1, WABA_2 = "waba-1", "waba-2"
m = outbound_message.c


@dataclass
class World:
    engine: AsyncEngine
    dispatcher: Dispatcher
    clock: Clock
    fake: FakeMeta
    senders: dict[str, uuid.UUID]  # by number
    orgs: dict[str, str]  # by number


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    fake = FakeMeta(token="shared-token")
    for number, waba_id in ((A, WABA_1), (A2, WABA_1), (B, WABA_2)):
        fake.add_number(number, token=f"token-{number}", waba_id=waba_id)
    async with running_fake_meta(fake) as base_url:
        settings = make_settings(
            database_url,
            provider="cloud",
            graph_api_base_url=base_url,
            app_secret="app-secret",
            send_timeout_seconds=2.0,
        )
        engine = create_engine(settings)
        provider = CloudProvider(settings)
        clock = Clock()
        dispatcher = Dispatcher(
            settings=settings, engine=engine, provider=provider, metrics=Metrics(), clock=clock
        )
        senders: dict[str, uuid.UUID] = {}
        orgs: dict[str, str] = {}
        for number, waba_id in ((A, WABA_1), (A2, WABA_1), (B, WABA_2)):
            org_id = await new_org(engine)
            async with engine.begin() as conn:
                senders[number] = await insert_sender(
                    conn, org_id, phone_number_id=number, waba_id=waba_id, token=f"token-{number}"
                )
            orgs[number] = org_id
        try:
            yield World(engine, dispatcher, clock, fake, senders, orgs)
        finally:
            await provider.close()
            await engine.dispose()


def phones(prefix: str, n: int) -> list[str]:
    return [f"+3361{prefix}{i:05d}" for i in range(n)]


async def queue_on(world: World, number: str, to: list[str], **kwargs: Any) -> list[uuid.UUID]:
    async with world.engine.begin() as conn:
        # Consent rows for these recipients, for the org of that number.
        await conn.execute(
            sa.text(
                "INSERT INTO consent (org_id, phone, status, source, granted_at, updated_at) "
                "VALUES (:org, :phone, 'granted', 'test', :now, :now)"
            ),
            [{"org": world.orgs[number], "phone": p, "now": utcnow()} for p in to],
        )
    return await queue(world.engine, world.orgs[number], *to, **kwargs)


async def drain(world: World, rounds: int = 20) -> None:
    for _ in range(rounds):
        if await world.dispatcher.run_once() == 0:
            return


async def rows(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(outbound_message).where(m.id.in_(ids)))
        return [dict(row._mapping) for row in result]


async def reasons(engine: AsyncEngine, sender_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sender.c.paused_reasons).where(sender.c.id == sender_id)
        )
    return list(found or [])


def sent_from(world: World, number: str) -> int:
    return sum(1 for r in world.fake.received.requests if r.phone_number_id == number)


async def test_a_revoked_token_pauses_only_its_sender_and_its_backlog_waits(world: World) -> None:
    # 500 messages on A, each on its last attempt: a token error must not fail any of them.
    waiting = await queue_on(world, A, phones("1", 500), max_attempts=1)
    others = await queue_on(world, B, phones("2", 5))
    world.fake.revoke_token(f"token-{A}")

    await drain(world)

    assert await reasons(world.engine, world.senders[A]) == ["token_invalid"]
    assert await reasons(world.engine, world.senders[B]) == []
    assert {r["status"] for r in await rows(world.engine, others)} == {"ACCEPTED"}
    backlog = await rows(world.engine, waiting)
    assert {(r["status"], r["attempts"], r["waiting_reason"]) for r in backlog} == {
        ("QUEUED", 0, "sender_paused")
    }
    assert not any(r["dead_lettered"] or r["error_code"] for r in backlog)
    # Only the batch in flight when the first answer came reached Meta; the rest never left.
    refused = sent_from(world, A)
    assert 0 < refused <= world.dispatcher.settings.dispatch_batch_size
    answered = [r for r in backlog if "sender_paused" in await event_types(world.engine, r["id"])]
    assert len(answered) == refused

    # A new token, and the sender resumed: every waiting message is sent, once.
    world.fake.numbers.revoked.clear()
    async with world.engine.begin() as conn:
        resumed = await health.remove_reasons(
            conn, ["token_invalid"], now=utcnow(), actor="test", sender_ids=[world.senders[A]]
        )
    assert [s.id for s in resumed] == [world.senders[A]]
    await drain(world)
    sent = await rows(world.engine, waiting)
    assert {(r["status"], r["attempts"], r["waiting_reason"]) for r in sent} == {
        ("ACCEPTED", 1, None)
    }
    assert sent_from(world, A) == refused + 500


@pytest.mark.parametrize(
    ("code", "reason"),
    [(131031, "account_restricted"), (368, "account_restricted"), (131042, "payment_issue")],
)
async def test_an_account_error_pauses_every_sender_of_the_waba(
    world: World, code: int, reason: str
) -> None:
    [first] = await queue_on(world, A, ["+33610000001"])
    world.fake.script("33610000001", meta_error(code, http_status=403))
    # Due a minute later, when the first answer has paused their senders (or not).
    later = utcnow() + timedelta(minutes=1)
    on_a2 = await queue_on(world, A2, phones("3", 3), send_after=later)
    on_b = await queue_on(world, B, phones("4", 3), send_after=later)
    assert await world.dispatcher.run_once() == 1
    world.clock.advance(120)

    for number in (A, A2):
        assert await reasons(world.engine, world.senders[number]) == [reason]
    assert await reasons(world.engine, world.senders[B]) == []
    [row] = await rows(world.engine, [first])
    assert (row["status"], row["attempts"], row["waiting_reason"]) == ("QUEUED", 0, "sender_paused")
    assert not row["dead_lettered"]
    await drain(world)
    assert {r["status"] for r in await rows(world.engine, on_b)} == {"ACCEPTED"}
    assert {(r["status"], r["waiting_reason"]) for r in await rows(world.engine, on_a2)} == {
        ("QUEUED", "sender_paused")
    }
    assert sent_from(world, A2) == 0


async def test_a_token_error_for_a_token_since_replaced_pauses_nothing(
    db_engine: AsyncEngine, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, token="new-token")
        paused = await health.pause_after_error(
            conn, sender_id, "token_invalid", used_token="plain:old-token", now=utcnow(), actor="t"
        )
        assert paused == []
        paused = await health.pause_after_error(
            conn, sender_id, "token_invalid", used_token="plain:new-token", now=utcnow(), actor="t"
        )
    assert [s.paused_reasons for s in paused] == [("token_invalid",)]
