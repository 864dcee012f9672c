"""The dispatcher with the Meta Cloud API client, against the fake Graph API over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import Clock, event_types, message, new_org, queue
from fake_meta import FakeMeta, hang, http_status, meta_error, running_fake_meta
from helpers import eventually, make_settings
from wa_outbound.db.engine import create_engine
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.metrics import Metrics
from wa_outbound.whatsapp.cloud import CloudProvider

PHONE = "+33612345678"
TOKEN = "meta-token"


@dataclass
class Cloud:
    engine: AsyncEngine
    dispatcher: Dispatcher
    fake: FakeMeta
    clock: Clock


def cloud_settings(database_url: str, base_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "provider": "cloud",
        "graph_api_base_url": base_url,
        "access_token": TOKEN,
        "phone_number_id": "106540352242922",
        "app_secret": "app-secret",
        "send_timeout_seconds": 1.0,
    }
    return make_settings(database_url, **(values | overrides))


@pytest.fixture
async def cloud(database_url: str) -> AsyncIterator[Cloud]:
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(database_url, base_url)
        engine = create_engine(settings)
        clock = Clock()
        provider = CloudProvider(settings)
        dispatcher = Dispatcher(
            settings=settings, engine=engine, provider=provider, metrics=Metrics(), clock=clock
        )
        try:
            yield Cloud(engine, dispatcher, fake, clock)
        finally:
            await provider.close()
            await engine.dispose()


async def test_send_reaches_meta_with_its_shape_and_stores_the_wamid(cloud: Cloud) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    assert await cloud.dispatcher.run_once() == 1
    [request] = cloud.fake.received.requests_for(PHONE.lstrip("+"))
    assert request.authorization == f"Bearer {TOKEN}"
    assert request.body["messaging_product"] == "whatsapp"
    assert request.body["type"] == "template"
    assert request.body["to"] == PHONE
    assert request.body["template"]["name"] == "order_update"
    assert request.body["template"]["language"] == {"code": "en_US"}
    assert request.body["template"]["components"][0]["parameters"][0]["text"] == "42"
    sent = await message(cloud.engine, message_id)
    assert sent["status"] == "ACCEPTED"
    assert sent["provider_message_id"] == request.wamid


async def test_rate_limit_error_is_retried_no_sooner_than_retry_after(cloud: Cloud) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(PHONE, meta_error(130429, http_status=429, retry_after=120))
    before = cloud.clock.now
    await cloud.dispatcher.run_once()
    retrying = await message(cloud.engine, message_id)
    assert (retrying["status"], retrying["error_code"], retrying["error_retryable"]) == (
        "RETRYING",
        "130429",
        True,
    )
    assert (retrying["next_attempt_at"] - before).total_seconds() >= 120
    cloud.clock.advance(121)
    await cloud.dispatcher.run_once()
    assert (await message(cloud.engine, message_id))["status"] == "ACCEPTED"


async def test_permanent_error_dead_letters_with_the_extracted_error(cloud: Cloud) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(
        PHONE,
        meta_error(
            132001,
            message="(#132001) Template name does not exist",
            details="template name (order_update) does not exist",
        ),
    )
    await cloud.dispatcher.run_once()
    failed = await message(cloud.engine, message_id)
    assert (failed["status"], failed["dead_lettered"], failed["attempts"]) == ("FAILED", True, 1)
    assert failed["error_code"] == "132001"
    assert failed["error_retryable"] is False
    assert "does not exist" in failed["error_message"]
    assert failed["error_details"] == "template name (order_update) does not exist"
    assert (await event_types(cloud.engine, message_id))[-1] == "failed"


@pytest.mark.parametrize("step", [http_status(500, "oops"), http_status(502), hang()])
async def test_server_errors_and_timeouts_are_retried(cloud: Cloud, step: Any) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(PHONE, step)
    await cloud.dispatcher.run_once()
    retrying = await message(cloud.engine, message_id)
    assert retrying["status"] == "RETRYING"
    assert retrying["error_code"] in {"http_500", "http_502", "transport_error"}
    # A timeout may have reached Meta: it waits for a status naming it (WA_RECONCILE_SECONDS).
    timed_out = step.kind == "hang"
    assert retrying["waiting_reason"] == ("send_unknown" if timed_out else None)
    cloud.clock.advance(61 if timed_out else 10)
    await cloud.dispatcher.run_once()
    assert (await message(cloud.engine, message_id))["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    ("step", "status", "stored"),
    [
        (http_status(500, "o\x00ops"), "RETRYING", ("o\ufffdops", None)),
        (
            meta_error(131026, message="no\x00pe", details="d\x00"),
            "FAILED",
            ("no\ufffdpe", "d\ufffd"),
        ),
    ],
)
async def test_an_answer_holding_a_nul_is_recorded_with_a_replacement_character(
    cloud: Cloud, step: Any, status: str, stored: tuple[str, str | None]
) -> None:
    # PostgreSQL cannot store a NUL: kept as it came, the outcome could not be written, the
    # message would stay SENDING and be sent again when its lease ran out.
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(PHONE, step)
    await cloud.dispatcher.run_once()
    recorded = await message(cloud.engine, message_id)
    assert recorded["status"] == status
    assert (recorded["error_message"], recorded["error_details"]) == stored


async def test_attempts_are_exhausted_into_the_dlq(cloud: Cloud) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE, max_attempts=3)
    cloud.fake.script_suffix("5678", meta_error(131000, http_status=500))
    for _ in range(3):
        await cloud.dispatcher.run_once()
        cloud.clock.advance(3600)
    failed = await message(cloud.engine, message_id)
    assert (failed["status"], failed["attempts"], failed["dead_lettered"]) == ("FAILED", 3, True)
    assert failed["error_code"] == "131000"
    assert cloud.fake.received.count(PHONE.lstrip("+")) == 3


async def test_pair_limit_backs_off_four_to_the_attempt(cloud: Cloud) -> None:
    org = await new_org(cloud.engine, PHONE)
    [message_id] = await queue(cloud.engine, org, PHONE)
    cloud.fake.script(PHONE, meta_error(131056))
    before = cloud.clock.now
    await cloud.dispatcher.run_once()
    after = cloud.clock.now
    retrying = await message(cloud.engine, message_id)
    assert before + timedelta(seconds=4 * 0.8) <= retrying["next_attempt_at"]
    assert retrying["next_attempt_at"] <= after + timedelta(seconds=4 * 1.2)


async def test_graceful_stop_finishes_in_flight_and_releases_the_rest(database_url: str) -> None:
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        settings = cloud_settings(
            database_url,
            base_url,
            dispatch_concurrency=2,
            shutdown_grace_seconds=0.5,
            send_timeout_seconds=30,
        )
        engine = create_engine(settings)
        provider = CloudProvider(settings)
        dispatcher = Dispatcher(
            settings=settings, engine=engine, provider=provider, metrics=Metrics()
        )
        try:
            phones = [f"+3361234{i:04d}" for i in range(1, 7)]
            org = await new_org(engine, *phones)
            ids = await queue(engine, org, *phones)
            for phone in phones:
                fake.script(phone, hang())
            task = asyncio.create_task(dispatcher.run())
            await eventually(lambda: fake.received.total >= 2)
            await dispatcher.stop()
            await asyncio.wait_for(task, 10)
            rows = [await message(engine, i) for i in ids]
        finally:
            await provider.close()
            await engine.dispose()
    statuses = sorted(r["status"] for r in rows)
    assert "SENDING" not in statuses, "nothing is left claimed after a graceful stop"
    in_flight = [r for r in rows if r["status"] == "RETRYING"]
    waiting = [r for r in rows if r["status"] == "QUEUED"]
    assert len(in_flight) == 2, "the two requests cut off mid-flight keep their attempt"
    assert all(r["attempts"] == 1 for r in in_flight)
    assert len(waiting) == 4
    assert all(r["attempts"] == 0 for r in waiting)
