"""End to end on PostgreSQL: a message queued over HTTP, sent by the dispatcher to the fake Meta,
its statuses posted to /webhooks/whatsapp; the organisation's app receives message.accepted,
message.sent, message.delivered, in order, signed, from the app's own callback worker."""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook

import meta_payloads as meta
from callback_helpers import insert_endpoint
from callback_receiver import receiving
from cloud_app import PHONE_OK, cloud_app, get_message, post_webhook
from factories import engine_for
from helpers import TEMPLATE, create_org_with_key, eventually, grant


async def test_a_messages_statuses_reach_the_organisations_app_in_order(
    postgres_url: str,
) -> None:
    async with (
        receiving() as receiver,
        cloud_app(
            postgres_url,
            callback_enabled=True,
            callback_allow_insecure=True,
            callback_poll_seconds=0.05,
        ) as app,
    ):
        org_id, auth = await create_org_with_key(app.client)
        await grant(app.client, auth, PHONE_OK)
        async with engine_for(postgres_url) as engine, engine.begin() as conn:
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/app"))
        response = await app.client.post(
            "/v1/messages", json={"to": PHONE_OK, "template": TEMPLATE}, headers=auth
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]

        async def accepted() -> bool:
            return bool((await get_message(app, auth, message_id))["status"] == "ACCEPTED")

        await eventually(accepted)
        wamid = (await get_message(app, auth, message_id))["provider_message_id"]
        await post_webhook(app.client, meta.envelope(statuses=[meta.status(wamid, "sent")]))
        await post_webhook(app.client, meta.envelope(statuses=[meta.status(wamid, "delivered")]))
        await eventually(lambda: len(receiver.at("/app")) >= 3)

    arrived = receiver.at("/app")
    assert [r.json["type"] for r in arrived] == [
        "message.accepted",
        "message.sent",
        "message.delivered",
    ]
    sequences = [r.json["data"]["sequence"] for r in arrived]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 3
    for received in arrived:
        Webhook(endpoint.secret).verify(received.body, received.headers)
        assert received.json["data"]["message"]["id"] == message_id
    assert [r.json["data"]["message"]["status"] for r in arrived] == [
        "ACCEPTED",
        "SENT",
        "DELIVERED",
    ]
