"""The dispatcher with the sandbox provider, on SQLite and PostgreSQL: the whole lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import (
    Clock,
    claim_as,
    event_types,
    expire_leases,
    message,
    new_org,
    queue,
)
from wa_outbound.config import Settings
from wa_outbound.contacts import consents
from wa_outbound.db.engine import create_engine
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.dlq import replay
from wa_outbound.metrics import Metrics
from wa_outbound.whatsapp.sandbox import SandboxProvider, SandboxStatuses

PHONE = "+33612345678"


@dataclass
class Sandbox:
    engine: AsyncEngine
    dispatcher: Dispatcher
    statuses: SandboxStatuses
    clock: Clock

    async def drain(self, rounds: int = 20) -> None:
        """Dispatch and play statuses until nothing is due (moving the clock past backoffs)."""
        for _ in range(rounds):
            sent = await self.dispatcher.run_once()
            played = await self.statuses.run_once(everything=True)
            if not sent and not played:
                self.clock.advance(3600)
                if not await self.dispatcher.run_once():
                    return
                await self.statuses.run_once(everything=True)


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[Sandbox]:
    engine = create_engine(settings)
    statuses = SandboxStatuses(engine)
    clock = Clock()
    dispatcher = Dispatcher(
        settings=settings,
        engine=engine,
        provider=SandboxProvider(statuses),
        metrics=Metrics(),
        clock=clock,
    )
    yield Sandbox(engine, dispatcher, statuses, clock)
    await engine.dispose()


async def test_message_goes_from_queued_to_read(sandbox: Sandbox) -> None:
    org = await new_org(sandbox.engine, PHONE)
    [message_id] = await queue(sandbox.engine, org, PHONE)
    assert await sandbox.dispatcher.run_once() == 1
    accepted = await message(sandbox.engine, message_id)
    assert accepted["status"] == "ACCEPTED"
    assert accepted["provider_message_id"].startswith("wamid.SANDBOX.")
    assert accepted["attempts"] == 1
    assert accepted["lease_until"] is None

    assert await sandbox.statuses.run_once(everything=True) == 3
    read = await message(sandbox.engine, message_id)
    assert read["status"] == "READ"
    assert None not in (read["sent_at"], read["delivered_at"], read["read_at"])
    types = await event_types(sandbox.engine, message_id)
    assert types[:3] == ["queued", "claimed", "accepted"]
    assert len(types) == 6


async def test_recipient_ending_0000_fails_after_sent_and_is_dead_lettered(
    sandbox: Sandbox,
) -> None:
    phone = "+33612340000"
    org = await new_org(sandbox.engine, phone)
    [message_id] = await queue(sandbox.engine, org, phone)
    await sandbox.drain()
    failed = await message(sandbox.engine, message_id)
    assert (failed["status"], failed["dead_lettered"], failed["error_code"]) == (
        "FAILED",
        True,
        "131026",
    )
    assert failed["sent_at"] is not None


async def test_recipient_ending_0429_succeeds_on_the_third_attempt(sandbox: Sandbox) -> None:
    phone = "+33612340429"
    org = await new_org(sandbox.engine, phone)
    [message_id] = await queue(sandbox.engine, org, phone)
    await sandbox.dispatcher.run_once()
    retrying = await message(sandbox.engine, message_id)
    assert (retrying["status"], retrying["error_code"]) == ("RETRYING", "130429")
    assert retrying["next_attempt_at"] > sandbox.clock.now
    assert await sandbox.dispatcher.run_once() == 0, "not before its backoff"
    await sandbox.drain()
    done = await message(sandbox.engine, message_id)
    assert (done["status"], done["attempts"], done["error_code"]) == ("READ", 3, None)
    assert (await event_types(sandbox.engine, message_id)).count("retry_scheduled") == 2


async def test_recipient_ending_0500_exhausts_attempts_into_the_dlq(sandbox: Sandbox) -> None:
    phone = "+33612340500"
    org = await new_org(sandbox.engine, phone)
    [message_id] = await queue(sandbox.engine, org, phone)
    await sandbox.drain()
    failed = await message(sandbox.engine, message_id)
    assert (failed["status"], failed["attempts"], failed["dead_lettered"]) == ("FAILED", 5, True)
    assert failed["error_code"] == "http_500"
    assert failed["error_retryable"] is True, "exhausted on a retryable error"
    assert (await event_types(sandbox.engine, message_id))[-1] == "attempts_exhausted"

    async with sandbox.engine.begin() as conn:
        [row] = await replay.replay(conn, org_id=org, actor="test", ids=[message_id])
    assert (row["status"], row["attempts"], row["dead_lettered"]) == ("QUEUED", 0, False)
    assert (await event_types(sandbox.engine, message_id))[-1] == "replayed"


async def test_consent_revoked_after_queueing_fails_without_sending(sandbox: Sandbox) -> None:
    org = await new_org(sandbox.engine, PHONE)
    [message_id] = await queue(sandbox.engine, org, PHONE)
    async with sandbox.engine.begin() as conn:
        await consents.set_consent(
            conn, org_id=org, phone=PHONE, status="revoked", source=None, actor="test"
        )
    await sandbox.dispatcher.run_once()
    failed = await message(sandbox.engine, message_id)
    assert (failed["status"], failed["error_code"], failed["dead_lettered"]) == (
        "FAILED",
        "consent_revoked",
        False,
    )
    assert failed["provider_message_id"] is None


async def test_scheduled_message_waits_for_send_after(sandbox: Sandbox) -> None:
    from datetime import timedelta

    org = await new_org(sandbox.engine, PHONE)
    [message_id] = await queue(
        sandbox.engine, org, PHONE, send_after=sandbox.clock.now + timedelta(minutes=10)
    )
    assert await sandbox.dispatcher.run_once() == 0
    sandbox.clock.advance(601)
    assert await sandbox.dispatcher.run_once() == 1
    assert (await message(sandbox.engine, message_id))["status"] == "ACCEPTED"


async def test_expired_lease_is_reclaimed_and_sent(sandbox: Sandbox, settings: Settings) -> None:
    org = await new_org(sandbox.engine, PHONE)
    [message_id] = await queue(sandbox.engine, org, PHONE)
    [claimed] = await claim_as(sandbox.engine, "dead", now=sandbox.clock.now)  # then it dies
    assert claimed.id == message_id
    assert await sandbox.dispatcher.run_once() == 0, "a live lease is not claimable"
    assert await sandbox.dispatcher.reclaim() == 0
    sandbox.clock.advance(61)
    assert await sandbox.dispatcher.reclaim() == 0, "leases run on the database's clock"
    await expire_leases(sandbox.engine)
    assert await sandbox.dispatcher.reclaim() == 1
    assert await sandbox.dispatcher.run_once() == 1
    sent = await message(sandbox.engine, message_id)
    assert (sent["status"], sent["attempts"]) == ("ACCEPTED", 2)
    assert "lease_expired" in await event_types(sandbox.engine, message_id)


async def test_many_messages_in_one_batch(sandbox: Sandbox) -> None:
    phones = [f"+3361234{i:04d}" for i in range(1, 151)]
    org = await new_org(sandbox.engine, *phones)
    ids = await queue(sandbox.engine, org, *phones)
    assert await sandbox.dispatcher.run_once() == 100
    assert await sandbox.dispatcher.run_once() == 50
    statuses = {(await message(sandbox.engine, i))["status"] for i in ids}
    assert statuses == {"ACCEPTED"}
    assert len({(await message(sandbox.engine, i))["provider_message_id"] for i in ids}) == 150
