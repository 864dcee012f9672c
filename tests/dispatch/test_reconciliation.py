"""Ambiguous sends with the dispatcher and the Cloud API client against the fake Graph API: a
send whose answer is lost waits `WA_RECONCILE_SECONDS` for a status naming it, and is sent again
only if none comes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import Clock, event_types, message, new_org, queue
from fake_meta import FakeMeta, drop, running_fake_meta
from helpers import make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import message_event, message_wamid
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.errors import NotCancellable
from wa_outbound.metrics import Metrics
from wa_outbound.outbox.messages import cancel_message
from wa_outbound.webhooks import intake
from wa_outbound.whatsapp.cloud import CloudProvider

PHONE = "+33612345678"
TOKEN = "meta-token"
RECONCILE_S = 30.0


def cloud_settings(database_url: str, base_url: str) -> Any:
    return make_settings(
        database_url,
        provider="cloud",
        graph_api_base_url=base_url,
        access_token=TOKEN,
        phone_number_id=meta.PHONE_NUMBER_ID,
        app_secret="app-secret",
        send_timeout_seconds=1.0,
        reconcile_seconds=RECONCILE_S,
    )


@dataclass
class Cloud:
    engine: AsyncEngine
    dispatcher: Dispatcher
    fake: FakeMeta
    clock: Clock


@pytest.fixture
async def cloud(database_url: str) -> AsyncIterator[Cloud]:
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(database_url, base_url)
        engine = create_engine(settings)
        provider = CloudProvider(settings)
        clock = Clock()
        dispatcher = Dispatcher(
            settings=settings, engine=engine, provider=provider, metrics=Metrics(), clock=clock
        )
        await dispatcher.senders.ensure_shared()  # the shared number's statuses are routed
        try:
            yield Cloud(engine, dispatcher, fake, clock)
        finally:
            await provider.close()
            await engine.dispose()


async def webhook(cloud: Cloud, *statuses: dict[str, object]) -> None:
    """A status webhook from Meta about the shared number, processed as the intake does."""
    async with cloud.engine.begin() as conn:
        await intake.process(conn, meta.envelope(statuses=list(statuses)), now=utcnow())


async def dropped_send(cloud: Cloud) -> tuple[uuid.UUID, str]:
    """A message whose send Meta took, with the connection dropped before the answer."""
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(PHONE, drop())
    assert await cloud.dispatcher.run_once() == 1
    [request] = cloud.fake.received.requests_for(PHONE.lstrip("+"))
    assert request.wamid is not None
    return message_id, request.wamid


async def test_a_dropped_send_waits_unclaimed_and_cannot_be_cancelled(cloud: Cloud) -> None:
    message_id, _ = await dropped_send(cloud)

    waiting = await message(cloud.engine, message_id)
    assert (waiting["status"], waiting["waiting_reason"]) == ("RETRYING", "send_unknown")
    assert waiting["provider_message_id"] is None
    assert waiting["attempts"] == 1
    delay_s = (waiting["next_attempt_at"] - cloud.clock.now).total_seconds()
    assert RECONCILE_S - 1 < delay_s <= RECONCILE_S
    assert (await event_types(cloud.engine, message_id))[-1] == "send_unknown"
    cloud.clock.advance(RECONCILE_S - 1)
    assert await cloud.dispatcher.run_once() == 0  # not before its time
    async with cloud.engine.begin() as conn:
        with pytest.raises(NotCancellable) as refused:
            await cancel_message(conn, org_id=waiting["org_id"], message_id=message_id, actor="t")
    assert refused.value.details["waiting_reason"] == "send_unknown"
    assert len(cloud.fake.received.requests_for(PHONE.lstrip("+"))) == 1


async def test_a_status_naming_the_message_reconciles_it_with_no_second_send(
    cloud: Cloud,
) -> None:
    message_id, wamid = await dropped_send(cloud)

    await webhook(cloud, meta.status(wamid, "sent", callback_data=str(message_id)))
    reconciled = await message(cloud.engine, message_id)
    assert (reconciled["status"], reconciled["provider_message_id"]) == ("SENT", wamid)
    assert reconciled["waiting_reason"] is None
    assert reconciled["error_code"] is None
    # Later statuses of that send are found by their wamid, callback data or not.
    await webhook(cloud, meta.status(wamid, "delivered"), meta.status(wamid, "read"))
    cloud.clock.advance(RECONCILE_S + 1)
    assert await cloud.dispatcher.run_once() == 0

    final = await message(cloud.engine, message_id)
    assert (final["status"], final["attempts"]) == ("READ", 1)
    assert len(cloud.fake.received.requests_for(PHONE.lstrip("+"))) == 1
    types = await event_types(cloud.engine, message_id)
    assert types[-5:] == [
        "send_unknown",
        "reconciled",
        "status.sent",
        "status.delivered",
        "status.read",
    ]


async def test_with_no_status_in_time_it_is_sent_again_using_one_attempt(cloud: Cloud) -> None:
    message_id, first_wamid = await dropped_send(cloud)

    cloud.clock.advance(RECONCILE_S + 1)
    assert await cloud.dispatcher.run_once() == 1

    requests = cloud.fake.received.requests_for(PHONE.lstrip("+"))
    assert len(requests) == 2
    resent = await message(cloud.engine, message_id)
    assert (resent["status"], resent["attempts"]) == ("ACCEPTED", 2)
    assert resent["provider_message_id"] == requests[1].wamid
    assert requests[1].body["biz_opaque_callback_data"] == str(message_id)

    # The first send's statuses arrive after all: a duplicate, linked and counted on the
    # timeline; the message keeps the wamid it got first and ends at the highest status.
    await webhook(
        cloud,
        meta.status(first_wamid, "sent", callback_data=str(message_id)),
        meta.status(first_wamid, "read", callback_data=str(message_id)),
    )
    final = await message(cloud.engine, message_id)
    assert (final["status"], final["provider_message_id"]) == ("READ", requests[1].wamid)
    async with cloud.engine.connect() as conn:
        linked = await conn.scalar(
            sa.select(message_wamid.c.message_id).where(
                message_wamid.c.provider_message_id == first_wamid
            )
        )
        duplicate = (
            await conn.execute(
                sa.select(message_event.c.details).where(
                    message_event.c.message_id == message_id,
                    message_event.c.type == "duplicate_send",
                )
            )
        ).scalar_one()
    assert linked == message_id
    assert duplicate["provider_message_id"] == first_wamid
    assert duplicate["first_provider_message_id"] == requests[1].wamid


async def test_a_refused_connection_is_retried_without_waiting(database_url: str) -> None:
    # Nothing listens there: no request was written, so Meta cannot have the message.
    settings = cloud_settings(database_url, "http://127.0.0.1:9")
    engine = create_engine(settings)
    provider = CloudProvider(settings)
    dispatcher = Dispatcher(
        settings=settings, engine=engine, provider=provider, metrics=Metrics(), clock=Clock()
    )
    try:
        org = await new_org(engine, PHONE)
        [message_id] = await queue(engine, org, PHONE)
        assert await dispatcher.run_once() == 1
        row = await message(engine, message_id)
    finally:
        await provider.close()
        await engine.dispose()
    assert (row["status"], row["error_code"]) == ("RETRYING", "transport_error")
    assert row["waiting_reason"] is None
    assert (row["next_attempt_at"] - utcnow()).total_seconds() < RECONCILE_S / 2


async def test_on_its_last_attempt_a_dropped_send_fails_and_a_late_status_revives_it(
    cloud: Cloud,
) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE, max_attempts=1)
    cloud.fake.script(PHONE, drop())
    await cloud.dispatcher.run_once()
    failed = await message(cloud.engine, message_id)
    assert (failed["status"], failed["dead_lettered"]) == ("FAILED", True)
    [request] = cloud.fake.received.requests_for(PHONE.lstrip("+"))
    assert request.wamid is not None

    await webhook(cloud, meta.status(request.wamid, "delivered", callback_data=str(message_id)))

    revived = await message(cloud.engine, message_id)
    assert (revived["status"], revived["dead_lettered"]) == ("DELIVERED", False)
    assert (revived["provider_message_id"], revived["error_code"]) == (request.wamid, None)
