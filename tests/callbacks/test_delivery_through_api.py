"""The worker with the endpoint API on PostgreSQL: an endpoint created over HTTP is sent events
signed with the secret the API showed, and with the previous one too after a rotation; a 410
disables it and its later events wait, and PATCH `enabled: true` sends them, in order."""

from __future__ import annotations

import uuid

from standardwebhooks.webhooks import Webhook

from callback_helpers import insert_message_events
from callback_receiver import Behaviour, receiving
from callbacks.delivery_support import FAST_SCHEDULE
from factories import engine_for
from helpers import (
    TEST_SECRET_KEY,
    app_and_state,
    create_org_with_key,
    eventually,
    make_settings,
)
from wa_outbound.app import create_app


async def test_an_endpoint_made_over_the_api_is_delivered_to_disabled_by_410_and_enabled_again(
    postgres_url: str,
) -> None:
    settings = make_settings(
        postgres_url,
        secret_keys=TEST_SECRET_KEY,
        callback_enabled=True,
        callback_allow_insecure=True,
        callback_poll_seconds=0.05,
        callback_retry_schedule=FAST_SCHEDULE,
    )
    async with receiving() as receiver, app_and_state(create_app(settings)) as (client, _state):
        org_id, auth = await create_org_with_key(client)
        response = await client.post(
            "/v1/webhook-endpoints", json={"url": receiver.url("/app")}, headers=auth
        )
        assert response.status_code == 201, response.text
        endpoint_id, first_secret = response.json()["id"], response.json()["secret"]
        response = await client.post(
            f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", headers=auth
        )
        assert response.status_code == 200, response.text
        second_secret = response.json()["secret"]

        async with engine_for(postgres_url) as engine, engine.begin() as conn:
            early = await insert_message_events(conn, org_id, [uuid.UUID(endpoint_id)], messages=1)
        await eventually(lambda: len(receiver.at("/app")) == 3)
        for received in receiver.at("/app"):
            Webhook(first_secret).verify(received.body, received.headers)
            Webhook(second_secret).verify(received.body, received.headers)

        # The app is gone: the endpoint is disabled at the first 410 and nothing more is sent.
        receiver.behaviours["/app"] = Behaviour(status=410)
        async with engine_for(postgres_url) as engine, engine.begin() as conn:
            late = await insert_message_events(conn, org_id, [uuid.UUID(endpoint_id)], messages=2)

        async def disabled() -> bool:
            shown = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)).json()
            return bool(shown["enabled"] is False and shown["disabled_reason"] == "gone")

        await eventually(disabled)
        # Refused: what was in flight at the first 410, at most each message's first event.
        refused = receiver.at("/app")[3:]
        firsts = {str(e.id) for e in late[:: len(late) // 2]}
        assert 1 <= len(refused) <= 2
        assert {r.webhook_id for r in refused} <= firsts

        # Back: enabled again, the waiting events go, each message's in order.
        receiver.behaviours["/app"] = Behaviour(status=204)
        response = await client.patch(
            f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": True}, headers=auth
        )
        assert response.status_code == 200, response.text
        await eventually(lambda: len({r.webhook_id for r in receiver.at("/app")}) == 9)

    arrived = [r.json for r in receiver.at("/app")]
    assert [a["id"] for a in arrived[:3]] == [str(e.id) for e in early]
    for message_id in {e.message_id for e in late}:
        sequences = [
            a["data"]["sequence"] for a in arrived if a["data"]["message"]["id"] == str(message_id)
        ]
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == 3
