"""Reconciliation end to end: the whole service served over loopback with its dispatcher running,
and a fake Meta that takes a send, drops the connection before answering, then posts the send's
signed status webhooks (with its `biz_opaque_callback_data`) to the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

import meta_payloads as meta
from fake_meta import FakeMeta, drop, running_fake_meta
from helpers import TEMPLATE, create_org_with_key, eventually, grant, make_settings
from serving import serving
from wa_outbound.app import create_app

TOKEN = "meta-token"
APP_SECRET = "app-secret"
PHONE = "+33612345678"


@dataclass
class Service:
    client: httpx.AsyncClient
    fake: FakeMeta
    auth: dict[str, str]


@asynccontextmanager
async def service(database_url: str, reconcile_s: float) -> AsyncIterator[Service]:
    # The fake posts to the service, whose port is known only once it is served: the webhook
    # URL is set then.
    fake = FakeMeta(token=TOKEN, webhook_url="http://127.0.0.1:9/unset", app_secret=APP_SECRET)
    async with running_fake_meta(fake) as meta_url:
        settings = make_settings(
            database_url,
            provider="cloud",
            graph_api_base_url=meta_url,
            access_token=TOKEN,
            phone_number_id=meta.PHONE_NUMBER_ID,
            app_secret=APP_SECRET,
            dispatch_enabled=True,
            dispatch_poll_seconds=0.05,
            send_timeout_seconds=2.0,
            reconcile_seconds=reconcile_s,
        )
        async with (
            serving(create_app(settings), lifespan="on") as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            assert fake.webhooks is not None
            fake.webhooks.url = f"{url}/webhooks/whatsapp"
            _, auth = await create_org_with_key(client)
            await grant(client, auth, PHONE)
            yield Service(client, fake, auth)


async def read(svc: Service, message_id: str, what: str = "") -> Any:
    response = await svc.client.get(f"/v1/messages/{message_id}{what}", headers=svc.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def queue_dropped(svc: Service) -> tuple[str, str]:
    """A template queued over HTTP whose first send the fake takes and never answers."""
    svc.fake.script(PHONE, drop())
    response = await svc.client.post(
        "/v1/messages", json={"to": PHONE, "template": TEMPLATE}, headers=svc.auth
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]

    async def unknown() -> bool:
        return bool((await read(svc, message_id))["waiting_reason"] == "send_unknown")

    await eventually(unknown)
    [request] = svc.fake.received.requests_for(PHONE.lstrip("+"))
    assert request.wamid is not None
    assert request.body["biz_opaque_callback_data"] == message_id
    return message_id, request.wamid


async def test_statuses_naming_a_dropped_send_reconcile_it_and_it_is_sent_once(
    database_url: str,
) -> None:
    async with service(database_url, reconcile_s=60.0) as svc:
        message_id, wamid = await queue_dropped(svc)
        cancel = await svc.client.post(f"/v1/messages/{message_id}/cancel", headers=svc.auth)
        assert (cancel.status_code, cancel.json()["error"]["code"]) == (409, "not_cancellable")

        for value in ("sent", "delivered", "read"):
            status = meta.status(wamid, value, callback_data=message_id)
            assert await svc.fake.send_statuses([status]) == 200

        final = await read(svc, message_id)
        assert (final["status"], final["provider_message_id"]) == ("READ", wamid)
        assert (final["attempts"], final["waiting_reason"], final["error"]) == (1, None, None)
        types = [event["type"] for event in (await read(svc, message_id, "/events"))["items"]]
        assert types[-5:] == [
            "send_unknown",
            "reconciled",
            "status.sent",
            "status.delivered",
            "status.read",
        ]
        assert len(svc.fake.received.requests_for(PHONE.lstrip("+"))) == 1


async def test_a_dropped_send_with_no_status_is_sent_again_after_the_wait(
    database_url: str,
) -> None:
    async with service(database_url, reconcile_s=0.5) as svc:
        message_id, first_wamid = await queue_dropped(svc)

        async def accepted() -> bool:
            return bool((await read(svc, message_id))["status"] == "ACCEPTED")

        await eventually(accepted)
        resent = await read(svc, message_id)
        requests = svc.fake.received.requests_for(PHONE.lstrip("+"))
        assert len(requests) == 2
        assert resent["attempts"] == 2
        assert resent["provider_message_id"] == requests[1].wamid != first_wamid
