"""The delivery worker against a real receiver over loopback, on SQLite and PostgreSQL: signed
requests that the Standard Webhooks library verifies, the events of a message in order, retries
with the same webhook-id, 410 disabling, 3xx as a failure."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callback_helpers import deliveries, endpoint_row, insert_endpoint, insert_event, new_secret
from callback_receiver import Behaviour, Received, receiving
from callbacks.delivery_support import callback_settings, new_worker, running
from helpers import eventually
from wa_outbound.db.types import utcnow


def verify(secret: str, received: Received) -> None:
    Webhook(secret).verify(received.body, received.headers)


async def test_a_delivery_is_signed_and_its_body_is_the_event(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/hook"))
            message_id = uuid.uuid4()
            event = await insert_event(
                conn, org_id, [endpoint.id], type="message.sent", message_id=message_id
            )
        worker = new_worker(db_engine, callback_settings(database_url))
        assert await worker.run_once() == 1
        [received] = receiver.at("/hook")
        verify(endpoint.secret, received)
        with pytest.raises(WebhookVerificationError):
            verify(new_secret(), received)
        assert received.webhook_id == str(event.id)
        assert received.headers["content-type"] == "application/json"
        body = received.json
        assert body["id"] == str(event.id)
        assert body["type"] == "message.sent"
        assert body["timestamp"].endswith("Z")
        assert body["data"] == {"message": {"id": str(message_id)}, "sequence": event.seq}
        async with db_engine.connect() as conn:
            [row] = await deliveries(conn, endpoint.id)
            ep = await endpoint_row(conn, endpoint.id)
        assert (row.status, row.attempts, row.last_status_code) == ("succeeded", 1, 200)
        assert row.delivered_at is not None
        assert row.claimed_by is None
        assert ep.last_success_at is not None
        assert ep.failing_since is None
        assert worker.metrics.callback_deliveries.labels(result="succeeded")._value.get() == 1


async def test_both_secrets_sign_during_a_rotation_and_only_the_new_one_after(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    old, new = new_secret(), new_secret()
    async with receiving() as receiver:
        async with db_engine.begin() as conn:
            rotating = await insert_endpoint(
                conn,
                org_id,
                receiver.url("/rotating"),
                secret=new,
                previous_secret=old,
                previous_secret_until=utcnow() + timedelta(hours=24),
            )
            rotated = await insert_endpoint(
                conn,
                org_id,
                receiver.url("/rotated"),
                secret=new,
                previous_secret=old,
                previous_secret_until=utcnow() - timedelta(seconds=1),
            )
            await insert_event(conn, org_id, [rotating.id, rotated.id])
        await new_worker(db_engine, callback_settings(database_url)).run_once()
        [during] = receiver.at("/rotating")
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        verify(old, during)
        verify(new, during)
        [after] = receiver.at("/rotated")
        verify(new, after)
        with pytest.raises(WebhookVerificationError):
            verify(old, after)


async def test_every_event_of_a_message_arrives_in_order_while_the_receiver_fails_for_a_while(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        # The first three requests fail: the first event is retried, the later ones wait.
        receiver.behaviours["/hook"] = Behaviour(statuses=[500, 500, 503])
        message_id = uuid.uuid4()
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/hook"))
            events = [
                await insert_event(conn, org_id, [endpoint.id], type=t, message_id=message_id)
                for t in ("message.accepted", "message.sent", "message.delivered", "message.read")
            ]
        worker = new_worker(db_engine, callback_settings(database_url))

        async def all_succeeded() -> bool:
            async with db_engine.connect() as conn:
                rows = await deliveries(conn, endpoint.id)
            return all(row.status == "succeeded" for row in rows)

        async with running(worker):
            await eventually(all_succeeded, timeout_s=30)
        arrived = receiver.at("/hook")
        ids = [r.webhook_id for r in arrived]
        # The failed attempts were of the first event, with its webhook-id each time.
        assert ids[:4] == [str(events[0].id)] * 4
        assert ids[3:] == [str(e.id) for e in events]
        assert [r.json["data"]["sequence"] for r in arrived[3:]] == [e.seq for e in events]
        # Each attempt is signed afresh and verifies.
        for received in arrived:
            verify(endpoint.secret, received)
        async with db_engine.connect() as conn:
            rows = await deliveries(conn, endpoint.id)
            ep = await endpoint_row(conn, endpoint.id)
        assert [row.attempts for row in rows] == [4, 1, 1, 1]
        assert ep.failing_since is None
        assert ep.enabled


async def test_a_delivery_fails_after_the_schedule_and_records_the_last_answer(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/hook"] = Behaviour(status=500)
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/hook"))
            await insert_event(conn, org_id, [endpoint.id], message_id=uuid.uuid4())
        settings = callback_settings(database_url, callback_retry_schedule="0.1,0.1")
        worker = new_worker(db_engine, settings)

        async def failed() -> bool:
            async with db_engine.connect() as conn:
                [row] = await deliveries(conn, endpoint.id)
            return bool(row.status == "failed")

        async with running(worker):
            await eventually(failed, timeout_s=20)
        assert len(receiver.at("/hook")) == 3  # the first attempt and two retries
        async with db_engine.connect() as conn:
            [row] = await deliveries(conn, endpoint.id)
            ep = await endpoint_row(conn, endpoint.id)
        assert (row.attempts, row.last_status_code, row.last_error) == (3, 500, "HTTP 500")
        assert ep.failing_since is not None
        assert ep.enabled
        counted = worker.metrics.callback_deliveries
        assert counted.labels(result="retried")._value.get() == 2
        assert counted.labels(result="failed")._value.get() == 1


async def test_410_disables_the_endpoint_at_once_and_its_deliveries_wait(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/gone"] = Behaviour(status=410)
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/gone"))
            for _ in range(3):
                await insert_event(conn, org_id, [endpoint.id])
        worker = new_worker(db_engine, callback_settings(database_url, callback_batch_size=1))
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0  # disabled: nothing more is attempted
        async with db_engine.connect() as conn:
            ep = await endpoint_row(conn, endpoint.id)
            rows = await deliveries(conn, endpoint.id)
        assert (ep.enabled, ep.disabled_reason) == (False, "gone")
        assert [row.status for row in rows] == ["pending"] * 3
        assert (rows[0].last_status_code, rows[0].last_error) == (410, "gone")
        assert len(receiver.at("/gone")) == 1


async def test_an_endpoint_failing_for_longer_than_the_limit_is_disabled(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/down"] = Behaviour(status=502)
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(
                conn, org_id, receiver.url("/down"), failing_since=utcnow() - timedelta(days=6)
            )
            await insert_event(conn, org_id, [endpoint.id])
        await new_worker(db_engine, callback_settings(database_url)).run_once()
        async with db_engine.connect() as conn:
            ep = await endpoint_row(conn, endpoint.id)
        assert (ep.enabled, ep.disabled_reason) == (False, "failing")


async def test_a_redirect_is_a_failure_and_is_not_followed(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/moved"] = Behaviour(
            status=301, headers={"Location": receiver.url("/elsewhere")}
        )
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/moved"))
            await insert_event(conn, org_id, [endpoint.id])
        await new_worker(db_engine, callback_settings(database_url)).run_once()
        assert receiver.at("/elsewhere") == []
        async with db_engine.connect() as conn:
            [row] = await deliveries(conn, endpoint.id)
        assert (row.status, row.last_status_code) == ("pending", 301)
        assert row.last_error == "redirect 301 (not followed)"
        assert row.next_attempt_at > utcnow()


async def test_retry_after_of_a_429_is_honoured(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/busy"] = Behaviour(status=429, headers={"Retry-After": "120"})
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/busy"))
            await insert_event(conn, org_id, [endpoint.id])
        before = utcnow()
        await new_worker(db_engine, callback_settings(database_url)).run_once()
        async with db_engine.connect() as conn:
            [row] = await deliveries(conn, endpoint.id)
        assert row.last_status_code == 429
        waited = (row.next_attempt_at - before).total_seconds()
        assert 119 <= waited <= 125  # the header's 120 s, not the schedule's 0.2 s


async def test_a_disabled_endpoints_deliveries_are_not_attempted(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with receiving() as receiver:
        async with db_engine.begin() as conn:
            endpoint = await insert_endpoint(
                conn, org_id, receiver.url("/off"), enabled=False, disabled_reason="manual"
            )
            await insert_event(conn, org_id, [endpoint.id])
        assert await new_worker(db_engine, callback_settings(database_url)).run_once() == 0
        assert receiver.received == []
