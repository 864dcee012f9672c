"""The whole service served over loopback with its dispatcher running on the Cloud API provider,
and a fake Graph API whose status webhooks reach the service's /webhooks/whatsapp, signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

import meta_payloads as meta
from fake_meta import FakeMeta, running_fake_meta
from helpers import create_org_with_key, grant, make_settings
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
async def service(database_url: str, reconcile_s: float = 60.0) -> AsyncIterator[Service]:
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


async def post_webhook(svc: Service, body: dict[str, Any]) -> None:
    """A signed webhook body from Meta, e.g. an inbound message that opens a service window."""
    raw = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta.sign(raw, APP_SECRET),
    }
    response = await svc.client.post("/webhooks/whatsapp", content=raw, headers=headers)
    assert response.status_code == 200, response.text


async def read(svc: Service, message_id: str, what: str = "") -> Any:
    response = await svc.client.get(f"/v1/messages/{message_id}{what}", headers=svc.auth)
    assert response.status_code == 200, response.text
    return response.json()
