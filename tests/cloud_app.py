"""The whole app on the Meta Cloud API provider, against the fake Graph API, with its dispatcher
running: a real flow (queue over HTTP, send, fail with a code, webhook) for the observability
tests to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

import meta_payloads as meta
from fake_meta import FakeMeta, meta_error, running_fake_meta
from helpers import TEMPLATE, app_and_state, create_org_with_key, eventually, grant, make_settings
from wa_outbound.app import create_app

TOKEN = "meta-access-token-not-for-logs"
APP_SECRET = "app-secret-not-for-logs"
VERIFY_TOKEN = "verify-token-not-for-logs"
PHONE_OK = "+33612345678"
PHONE_FAILS = "+33698765432"


@dataclass
class CloudApp:
    client: httpx.AsyncClient
    fake: FakeMeta
    state: dict[str, Any]


@dataclass
class Flow:
    org_id: str
    auth: dict[str, str]
    accepted_id: str  # accepted by Meta, then failed by webhook with 131026
    failed_id: str  # refused by Meta with 132001 (permanent)


@asynccontextmanager
async def cloud_app(database_url: str, **overrides: Any) -> AsyncIterator[CloudApp]:
    fake = FakeMeta(token=TOKEN)
    async with running_fake_meta(fake) as base_url:
        settings = make_settings(
            database_url,
            **{
                "provider": "cloud",
                "graph_api_base_url": base_url,
                "access_token": TOKEN,
                "phone_number_id": meta.PHONE_NUMBER_ID,
                "app_secret": APP_SECRET,
                "webhook_verify_token": VERIFY_TOKEN,
                "dispatch_enabled": True,
                "metrics_refresh_seconds": 0.05,
                **overrides,
            },
        )
        async with app_and_state(create_app(settings)) as (client, state):
            yield CloudApp(client, fake, state)


async def post_webhook(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    response = await client.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta.sign(raw, APP_SECRET),
        },
    )
    assert response.status_code == 200, response.text


async def get_message(app: CloudApp, auth: dict[str, str], message_id: str) -> Any:
    response = await app.client.get(f"/v1/messages/{message_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def run_flow(app: CloudApp) -> Flow:
    """Two messages queued over HTTP: Meta accepts one (a `sent` then a `failed` 131026 webhook
    follow) and refuses the other for good with 132001."""
    org_id, auth = await create_org_with_key(app.client)
    for phone in (PHONE_OK, PHONE_FAILS):
        await grant(app.client, auth, phone)
    app.fake.script(PHONE_FAILS, meta_error(132001, message="(#132001) Template does not exist"))
    ids = []
    for phone in (PHONE_OK, PHONE_FAILS):
        response = await app.client.post(
            "/v1/messages", json={"to": phone, "template": TEMPLATE}, headers=auth
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    accepted_id, failed_id = ids

    async def settled() -> bool:
        ok = await get_message(app, auth, accepted_id)
        failed = await get_message(app, auth, failed_id)
        return bool(ok["status"] == "ACCEPTED" and failed["status"] == "FAILED")

    await eventually(settled)
    wamid = (await get_message(app, auth, accepted_id))["provider_message_id"]
    undeliverable = meta.error(131026, "Message undeliverable")
    statuses = [meta.status(wamid, "sent"), meta.status(wamid, "failed", errors=[undeliverable])]
    await post_webhook(app.client, meta.envelope(statuses=statuses))
    return Flow(org_id, auth, accepted_id, failed_id)
