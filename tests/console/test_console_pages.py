"""The console's pages and actions over HTTP (the app in process, on SQLite and PostgreSQL):
messages and their filters, senders (pause, resume, a new token), webhook endpoints (retry,
recover), alerts; each action through the domain's functions, with the console's actor, and
nothing of another organisation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from alert_factories import add_messages
from alert_factories import message_row as outbox_row
from callback_helpers import insert_event_with_deliveries
from console_helpers import csrf_of, sign_in
from factories import engine_for, insert_sender
from helpers import ADMIN_TOKEN, TEST_SECRET_KEY, app_client, create_org_with_key, make_settings
from wa_outbound.app import create_app
from wa_outbound.db.callback_schema import callback_delivery
from wa_outbound.db.schema import alert, audit_event, sender
from wa_outbound.db.types import utcnow

URL = "https://93.184.215.14/hooks/wa"


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, console_allow_insecure=True, secret_keys=TEST_SECRET_KEY)
    async with app_client(create_app(settings)) as client:
        yield client


@pytest.fixture
async def org(console: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    org_id, auth = await create_org_with_key(console)
    await sign_in(console, auth["Authorization"].removeprefix("Bearer "))
    return org_id, auth


def actor_of(auth: dict[str, str]) -> str:
    return "console:" + auth["Authorization"].removeprefix("Bearer ")[:12]


async def _post(console: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    token = csrf_of((await console.get("/console/")).text)
    return await console.post(path, data={"csrf_token": token, **fields})


async def test_messages_are_filtered_by_status_recipient_and_sender(
    console: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id = org[0]
    async with engine_for(database_url) as engine:
        async with engine.begin() as conn:
            own = await insert_sender(conn, org_id)
        now = utcnow()
        rows = [
            outbox_row(
                org_id=org_id, now=now, status="READ", to_phone="+33611111111", sender_id=None
            ),
            outbox_row(
                org_id=org_id, now=now, status="QUEUED", to_phone="+33622222222", sender_id=None
            ),
            outbox_row(
                org_id=org_id, now=now, status="QUEUED", to_phone="+33633333333", sender_id=own
            ),
        ]
        await add_messages(engine, rows)
    ids = [str(r["id"])[:8] for r in rows]

    def shown(page: httpx.Response) -> set[str]:
        assert page.status_code == 200, page.text
        return {i for i in ids if f">{i}<" in page.text}

    assert shown(await console.get("/console/messages")) == set(ids)
    assert shown(await console.get("/console/messages?status=QUEUED")) == {ids[1], ids[2]}
    assert shown(await console.get("/console/messages?to=%2B33%206%2011%2011%2011%2011")) == {
        ids[0]
    }
    assert shown(await console.get(f"/console/messages?sender={own}")) == {ids[2]}
    assert shown(await console.get("/console/messages?status=QUEUED&sender=" + str(own))) == {
        ids[2]
    }
    bad = await console.get("/console/messages?to=not-a-number")
    assert "Recipient:" in bad.text


async def test_an_org_pauses_resumes_and_renews_its_senders_token(
    console: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id, auth = org
    other_id, _ = await create_org_with_key(console, "Other")
    async with engine_for(database_url) as engine, engine.begin() as conn:
        mine = await insert_sender(conn, org_id, token="old-token-1111")
        theirs = await insert_sender(conn, other_id)

    listed = await console.get("/console/senders")
    paused = await _post(console, f"/console/senders/{mine}/pause")
    after_pause = await console.get("/console/senders")
    resumed = await _post(console, f"/console/senders/{mine}/resume")
    renewed = await _post(console, f"/console/senders/{mine}/token", access_token="new-token-2222")
    not_mine = await _post(console, f"/console/senders/{theirs}/pause")

    assert str(mine) in listed.text
    assert str(theirs) not in listed.text
    assert paused.headers["location"] == "/console/senders?done=paused"
    assert "manual" in after_pause.text
    assert resumed.status_code == 303
    assert renewed.headers["location"] == "/console/senders?done=token"
    assert not_mine.status_code == 404
    async with engine_for(database_url) as engine, engine.connect() as conn:
        row = (await conn.execute(sa.select(sender).where(sender.c.id == mine))).one()
        theirs_row = (await conn.execute(sa.select(sender).where(sender.c.id == theirs))).one()
        audit = await conn.execute(
            sa.select(audit_event.c.actor, audit_event.c.details).where(
                audit_event.c.action == "sender.updated", audit_event.c.subject == str(mine)
            )
        )
        changes = [(a.actor, a.details["changed"]) for a in audit]
    assert list(row.paused_reasons) == []
    assert row.token_last4 == "2222"
    assert list(theirs_row.paused_reasons) == []
    actor = actor_of(auth)
    assert changes == [(actor, ["paused"]), (actor, ["paused"]), (actor, ["access_token"])]


async def test_an_org_retries_and_recovers_its_endpoints_deliveries(
    console: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id, auth = org
    created = await console.post("/v1/webhook-endpoints", json={"url": URL}, headers=auth)
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    old = utcnow() - timedelta(hours=2)
    async with engine_for(database_url) as engine, engine.begin() as conn:
        first = await insert_event_with_deliveries(
            conn, org_id=org_id, endpoint_ids=[uuid.UUID(endpoint_id)], at=old,
            status="failed", attempts=8, last_status_code=500,
        )  # fmt: skip
        second = await insert_event_with_deliveries(
            conn, org_id=org_id, endpoint_ids=[uuid.UUID(endpoint_id)],
            status="failed", attempts=8, last_status_code=410,
        )  # fmt: skip

    listed = await console.get("/console/endpoints")
    page = await console.get(f"/console/endpoints/{endpoint_id}?status=failed")
    retried = await _post(
        console, f"/console/endpoints/{endpoint_id}/deliveries/{first.deliveries[0]}/retry"
    )
    since = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    recovered = await _post(console, f"/console/endpoints/{endpoint_id}/recover", since=since)
    _other_id, other_auth = await create_org_with_key(console, "Other")
    await sign_in(console, other_auth["Authorization"].removeprefix("Bearer "))
    foreign = await console.get(f"/console/endpoints/{endpoint_id}")

    assert URL in listed.text
    assert str(first.deliveries[0]) in page.text
    assert retried.headers["location"] == f"/console/endpoints/{endpoint_id}?done=retried"
    assert recovered.headers["location"] == f"/console/endpoints/{endpoint_id}?done=recovered1"
    assert foreign.status_code == 404
    async with engine_for(database_url) as engine, engine.connect() as conn:
        statuses = dict(
            (
                await conn.execute(sa.select(callback_delivery.c.id, callback_delivery.c.status))
            ).all()
        )
        audit = await conn.execute(
            sa.select(audit_event.c.action, audit_event.c.actor).where(
                audit_event.c.action.in_(["webhook_delivery.retried", "webhook_endpoint.recovered"])
            )
        )
        actions = sorted(tuple(a) for a in audit)
    assert statuses == {first.deliveries[0]: "pending", second.deliveries[0]: "pending"}
    assert actions == [
        ("webhook_delivery.retried", actor_of(auth)),
        ("webhook_endpoint.recovered", actor_of(auth)),
    ]


async def _alert(
    database_url: str, type_: str, subject: str, details: dict[str, Any], state: str
) -> None:
    now = utcnow()
    async with engine_for(database_url) as engine, engine.begin() as conn:
        await conn.execute(
            alert.insert().values(
                id=uuid.uuid4(), type=type_, subject=subject, severity="warning", state=state,
                summary=f"{type_} about {subject}", details=details, first_fired_at=now,
                last_notified_at=now, resolved_at=now if state == "resolved" else None,
                notifications=1, updated_at=now,
            )
        )  # fmt: skip


async def test_an_org_sees_its_own_alerts_and_the_admin_sees_every_alert(
    console: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id = org[0]
    await _alert(database_url, "sender_paused", "s-mine", {"org_id": org_id}, "firing")
    await _alert(database_url, "sender_paused", "s-theirs", {"org_id": "someone-else"}, "firing")
    await _alert(database_url, "queue_depth", "all", {"depth": 9000}, "resolved")

    as_org = (await console.get("/console/alerts")).text
    await sign_in(console, ADMIN_TOKEN)
    orgs = await console.get("/console/orgs")
    await console.post("/console/orgs", data={"csrf_token": csrf_of(orgs.text), "org_id": org_id})
    as_admin = (await console.get("/console/alerts")).text

    assert "about s-mine" in as_org
    assert "about s-theirs" not in as_org
    assert "about all" not in as_org
    for summary in ("about s-mine", "about s-theirs", "about all"):
        assert summary in as_admin
