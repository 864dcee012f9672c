"""The registry read from the fake Graph API, on SQLite and PostgreSQL: every page, when a
sender of a new WABA is added, periodically by one replica, on demand; a Meta that cannot be
read leaves the WABA advisory; the API lists the org's WABAs only, and asks Meta once for a
name it does not know before refusing it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cloud_app import CloudApp, cloud_app
from helpers import ADMIN, create_org_with_key, eventually, grant
from wa_outbound.db.template_schema import template, template_sync
from wa_outbound.db.types import utcnow
from wa_outbound.templates.sync import TemplateSync

WABA, OTHER_WABA = "waba-t-1", "waba-t-2"
NUMBER, OTHER_NUMBER = "2001", "2002"
TOKENS = {NUMBER: "token-t-0001", OTHER_NUMBER: "token-t-0002"}
USER = "+33612345678"


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[CloudApp]:
    async with cloud_app(database_url, dispatch_enabled=False) as app:
        app.fake.add_number(NUMBER, token=TOKENS[NUMBER], waba_id=WABA)
        app.fake.add_number(OTHER_NUMBER, token=TOKENS[OTHER_NUMBER], waba_id=OTHER_WABA)
        yield app


async def add_sender(app: CloudApp, auth: dict[str, str], number: str, waba_id: str) -> None:
    body = {"phone_number_id": number, "waba_id": waba_id, "access_token": TOKENS[number]}
    response = await app.client.post("/v1/senders", json=body, headers=auth)
    assert response.status_code == 201, response.text


async def listed(app: CloudApp, auth: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await app.client.get("/v1/templates", params=params, headers=auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def syncer(app: CloudApp) -> TemplateSync:
    found: TemplateSync = app.state["templates"]
    return found


async def synced_once(app: CloudApp, waba_id: str) -> None:
    async def done() -> bool:
        async with app.state["engine"].connect() as conn:
            at = await conn.scalar(
                sa.select(template_sync.c.synced_at).where(template_sync.c.waba_id == waba_id)
            )
        return at is not None

    await eventually(done)


async def test_a_new_waba_is_read_page_by_page_when_its_first_sender_is_added(
    app: CloudApp,
) -> None:
    for n in range(230):
        app.fake.templates.add(WABA, f"tpl_{n:03d}", status="APPROVED" if n % 2 else "PAUSED")
    _, auth = await create_org_with_key(app.client)
    await add_sender(app, auth, NUMBER, WABA)
    await synced_once(app, WABA)
    items = await listed(app, auth)
    assert len(items) == 230
    assert {i["waba_id"] for i in items} == {WABA}
    first = next(i for i in items if i["name"] == "tpl_001")
    assert (first["status"], first["category"], first["language"]) == (
        "APPROVED",
        "UTILITY",
        "en_US",
    )
    assert first["components"] == [{"type": "BODY", "text": "Hello {{1}}"}]
    pages = [r for r in app.fake.templates.requests if r["waba_id"] == WABA]
    assert len(pages) == 3, "100 a page, following paging.next"
    assert pages[0]["fields"] == "name,language,status,category,components"
    assert [p.get("after") for p in pages] == [None, "100", "200"]


async def test_a_template_meta_no_longer_lists_becomes_deleted(app: CloudApp) -> None:
    kept = app.fake.templates.add(WABA, "kept")
    app.fake.templates.add(WABA, "gone")
    _, auth = await create_org_with_key(app.client)
    await add_sender(app, auth, NUMBER, WABA)
    await synced_once(app, WABA)
    app.fake.templates.by_waba[WABA] = [kept]
    assert await syncer(app).sync(WABA)
    statuses = {i["name"]: i["status"] for i in await listed(app, auth)}
    assert statuses == {"kept": "APPROVED", "gone": "DELETED"}


async def test_one_replica_reads_a_waba_per_period(app: CloudApp) -> None:
    app.fake.templates.add(WABA, "order_update")
    _, auth = await create_org_with_key(app.client)
    await add_sender(app, auth, NUMBER, WABA)
    await synced_once(app, WABA)
    before = len(app.fake.templates.requests)

    def replicas(later_s: float) -> list[TemplateSync]:
        def clock() -> datetime:
            return utcnow() + timedelta(seconds=later_s)

        settings, engine = app.state["settings"], app.state["engine"]
        decrypt = syncer(app)._decrypt
        return [TemplateSync(engine, settings, decrypt=decrypt, clock=clock) for _ in range(3)]

    assert [await r.run_once() for r in replicas(0)] == [0, 0, 0], "read less than a period ago"
    assert len(app.fake.templates.requests) == before
    # A period later, the three look at once: one reads Meta.
    results = await asyncio.gather(*(r.run_once() for r in replicas(3601)))
    assert sorted(results) == [0, 0, 1], results
    assert len(app.fake.templates.requests) == before + 1


async def test_meta_unreachable_keeps_the_waba_advisory(app: CloudApp) -> None:
    app.fake.templates.failing = True
    _org_id, auth = await create_org_with_key(app.client)
    await add_sender(app, auth, NUMBER, WABA)
    assert not await syncer(app).sync(WABA)
    async with app.state["engine"].connect() as conn:
        row = (
            await conn.execute(sa.select(template_sync).where(template_sync.c.waba_id == WABA))
        ).one()
    assert row.synced_at is None
    assert "500" in row.last_error
    await grant(app.client, auth, USER)
    body = {"to": USER, "template": {"name": "whatever", "language": "en_US"}}
    response = await app.client.post("/v1/messages", json=body, headers=auth)
    assert response.status_code == 202, response.text


async def test_queueing_asks_meta_once_for_a_name_the_synced_registry_lacks(app: CloudApp) -> None:
    app.fake.templates.add(WABA, "order_update")
    app.fake.templates.add(WABA, "paused_one", status="PAUSED")
    _, auth = await create_org_with_key(app.client)
    await add_sender(app, auth, NUMBER, WABA)
    await synced_once(app, WABA)
    await grant(app.client, auth, USER)

    async def post(name: str) -> Any:
        body = {"to": USER, "template": {"name": name, "language": "en_US"}}
        return await app.client.post("/v1/messages", json=body, headers=auth)

    assert (await post("order_update")).status_code == 202
    paused = await post("paused_one")
    assert paused.status_code == 422
    assert paused.json()["error"]["code"] == "template_not_approved"
    assert paused.json()["error"]["details"]["status"] == "PAUSED"
    before = len(app.fake.templates.requests)
    missing = await post("missing_one")
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "template_not_found"
    lookups = app.fake.templates.requests[before:]
    assert [r.get("name") for r in lookups] == ["missing_one"]

    app.fake.templates.add(WABA, "created_since")  # Meta has it; the registry not yet
    assert (await post("created_since")).status_code == 202
    assert any(i["name"] == "created_since" for i in await listed(app, auth))

    batch = await app.client.post(
        "/v1/messages/batch",
        json={
            "messages": [
                {"to": USER, "template": {"name": n, "language": "en_US"}}
                for n in ("order_update", "paused_one", "missing_two")
            ]
        },
        headers=auth,
    )
    codes = [(r["error"] or {}).get("code") for r in batch.json()["results"]]
    assert codes == [None, "template_not_approved", "template_not_found"]


async def test_the_api_shows_the_org_its_own_wabas_only(app: CloudApp) -> None:
    app.fake.templates.add(WABA, "mine")
    app.fake.templates.add(OTHER_WABA, "theirs")
    org_id, auth = await create_org_with_key(app.client)
    _, other_auth = await create_org_with_key(app.client, "Other")
    await add_sender(app, auth, NUMBER, WABA)
    await add_sender(app, other_auth, OTHER_NUMBER, OTHER_WABA)
    await synced_once(app, WABA)
    await synced_once(app, OTHER_WABA)
    assert [i["name"] for i in await listed(app, auth)] == ["mine"]
    assert [i["name"] for i in await listed(app, auth, waba_id=WABA)] == ["mine"]
    foreign = await app.client.get("/v1/templates", params={"waba_id": OTHER_WABA}, headers=auth)
    assert foreign.status_code == 404
    as_admin = await app.client.get("/v1/templates", headers=ADMIN | {"X-Org-Id": org_id})
    assert [i["name"] for i in as_admin.json()["items"]] == ["mine"]

    app.fake.templates.add(WABA, "later")
    started = await app.client.post("/v1/templates/sync", headers=auth)
    assert started.status_code == 202
    assert started.json() == {"waba_ids": [WABA]}

    async def arrived() -> bool:
        return any(i["name"] == "later" for i in await listed(app, auth))

    await eventually(arrived)
    async with app.state["engine"].connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(template))
    assert count == 3
