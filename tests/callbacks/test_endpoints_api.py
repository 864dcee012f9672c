"""The webhook endpoints API on SQLite and PostgreSQL: creating, reading, changing and deleting
endpoints, their secrets (shown twice, stored encrypted, rotated with an overlap), the event
types they accept, and the URLs they refuse."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from factories import engine_for
from helpers import ADMIN, TEST_SECRET_KEY, app_client, create_org_with_key, make_settings
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.crypto import Keyring
from wa_outbound.db.callback_schema import callback_endpoint
from wa_outbound.db.schema import audit_event
from wa_outbound.events.outgoing import EVENT_TYPES

pytestmark = pytest.mark.asyncio

# A literal public address: accepted without a DNS lookup.
URL = "https://93.184.215.14/hooks/wa"
SECRET_FORM = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, secret_keys=TEST_SECRET_KEY)


async def create(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> Any:
    response = await client.post("/v1/webhook-endpoints", json={"url": URL, **body}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def stored(database_url: str, endpoint_id: str) -> dict[str, Any]:
    async with engine_for(database_url) as engine, engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(callback_endpoint).where(callback_endpoint.c.id == uuid.UUID(endpoint_id))
            )
        ).one()
    return dict(row._mapping)


async def test_an_endpoint_is_created_with_a_secret_shown_once(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    _, auth = org
    created = await create(
        client, auth, events=["message.delivered", "message.failed"], description="Orders"
    )
    assert SECRET_FORM.match(created["secret"]), created["secret"]
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["url"] == URL
    assert created["events"] == ["message.delivered", "message.failed"]
    assert created["description"] == "Orders"
    assert created["enabled"] is True
    assert created["disabled_reason"] is None
    endpoint_id = created["id"]

    read = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)).json()
    assert read == {k: v for k, v in created.items() if k != "secret"}
    listed = (await client.get("/v1/webhook-endpoints", headers=auth)).json()
    assert listed == {"items": [read]}
    assert created["secret"] not in str(listed)

    row = await stored(database_url, endpoint_id)
    assert row["secret"] != created["secret"]
    assert created["secret"] not in row["secret"]
    assert row["secret"].startswith("fernet:")
    assert Keyring([TEST_SECRET_KEY]).decrypt(row["secret"]) == created["secret"]


async def test_events_absent_or_null_mean_every_type_and_duplicates_are_dropped(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    assert (await create(client, auth))["events"] is None
    assert (await create(client, auth, events=None))["events"] is None
    twice = await create(client, auth, events=["consent.changed", "consent.changed"])
    assert twice["events"] == ["consent.changed"]


async def test_every_type_the_service_emits_can_be_subscribed_to(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    assert len(EVENT_TYPES) == 10
    assert (await create(client, auth, events=list(EVENT_TYPES)))["events"] == list(EVENT_TYPES)


async def test_an_unknown_event_type_is_refused_naming_its_place(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    response = await client.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": ["message.sent", "message.exploded"]},
        headers=auth,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("events.1: ")
    assert error["details"]["errors"][0]["loc"] == ["body", "events", "1"]
    assert (await client.get("/v1/webhook-endpoints", headers=auth)).json() == {"items": []}


async def test_the_list_holds_the_orgs_endpoints_oldest_first(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    first = await create(client, auth, description="first")
    second = await create(client, auth, description="second")
    _, other = await create_org_with_key(client, "Globex")
    await create(client, other, description="theirs")
    listed = (await client.get("/v1/webhook-endpoints", headers=auth)).json()["items"]
    assert [item["id"] for item in listed] == [first["id"], second["id"]]


async def test_patch_changes_only_the_fields_given(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    created = await create(client, auth, events=["message.read"], description="Orders")
    path = f"/v1/webhook-endpoints/{created['id']}"
    response = await client.patch(path, json={"url": "https://93.184.215.15/new"}, headers=auth)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["url"] == "https://93.184.215.15/new"
    assert changed["events"] == ["message.read"]
    assert changed["description"] == "Orders"
    assert changed["updated_at"] >= created["updated_at"]

    changed = (await client.patch(path, json={"events": None}, headers=auth)).json()
    assert changed["events"] is None
    changed = (
        await client.patch(path, json={"description": None, "url": None}, headers=auth)
    ).json()
    assert changed["description"] is None
    assert changed["url"] == "https://93.184.215.15/new"

    response = await client.patch(path, json={"events": ["nope"]}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["body", "events", "0"]
    response = await client.patch(path, json={"url": "http://93.184.215.15/"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "url_not_allowed"
    assert (await client.get(path, headers=auth)).json()["url"] == "https://93.184.215.15/new"


async def test_disabling_and_enabling_set_the_reason(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    path = f"/v1/webhook-endpoints/{(await create(client, auth))['id']}"
    disabled = (await client.patch(path, json={"enabled": False}, headers=auth)).json()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "manual")
    enabled = (await client.patch(path, json={"enabled": True}, headers=auth)).json()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    response = await client.patch(path, json={"enabled": "yes"}, headers=auth)
    assert response.status_code == 422


async def test_delete_removes_the_endpoint(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, auth = org
    path = f"/v1/webhook-endpoints/{(await create(client, auth))['id']}"
    response = await client.delete(path, headers=auth)
    assert response.status_code == 204
    assert (await client.get(path, headers=auth)).status_code == 404
    assert (await client.delete(path, headers=auth)).status_code == 404


async def test_rotation_keeps_the_previous_secret_a_day_and_drops_the_oldest(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    _, auth = org
    created = await create(client, auth)
    path = f"/v1/webhook-endpoints/{created['id']}/rotate-secret"
    keyring = Keyring([TEST_SECRET_KEY])

    before = datetime.now(UTC)
    response = await client.post(path, headers=auth)
    assert response.status_code == 200, response.text
    second = response.json()["secret"]
    assert response.json() == {"secret": second}
    assert SECRET_FORM.match(second)
    assert second != created["secret"]
    row = await stored(database_url, created["id"])
    assert keyring.decrypt(row["secret"]) == second
    assert keyring.decrypt(row["previous_secret"]) == created["secret"]
    until = row["previous_secret_until"]
    assert before + timedelta(hours=24) <= until <= datetime.now(UTC) + timedelta(hours=24)

    third = (await client.post(path, headers=auth)).json()["secret"]
    row = await stored(database_url, created["id"])
    assert keyring.decrypt(row["secret"]) == third
    assert keyring.decrypt(row["previous_secret"]) == second
    assert created["secret"] not in {
        keyring.decrypt(row["secret"]),
        keyring.decrypt(row["previous_secret"]),
    }
    read = (await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=auth)).text
    assert third not in read
    assert second not in read


async def test_changes_are_audited_without_secrets(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id, auth = org
    created = await create(client, auth)
    path = f"/v1/webhook-endpoints/{created['id']}"
    await client.patch(path, json={"description": "x"}, headers=auth)
    rotated = (await client.post(f"{path}/rotate-secret", headers=auth)).json()["secret"]
    await client.delete(path, headers={**ADMIN, "X-Org-Id": org_id})
    async with engine_for(database_url) as engine, engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_event.c.action, audit_event.c.actor, audit_event.c.details)
                .where(audit_event.c.org_id == org_id, audit_event.c.subject == created["id"])
                .order_by(audit_event.c.id)
            )
        ).all()
    assert [row.action for row in rows] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint.deleted",
    ]
    assert rows[-1].actor == "admin"
    assert created["secret"] not in str(rows)
    assert rotated not in str(rows)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "https://user:pass@93.184.215.14/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://10.0.0.7/hook",
        "ftp://93.184.215.14/hook",
    ],
)
async def test_urls_that_could_reach_inside_are_refused(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], url: str
) -> None:
    _, auth = org
    response = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "url_not_allowed"
    assert (await client.get("/v1/webhook-endpoints", headers=auth)).json() == {"items": []}


@pytest.fixture
async def insecure_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url, secret_keys=TEST_SECRET_KEY, callback_allow_insecure=True
    )
    async with app_client(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "https://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_insecure_urls_are_allowed_when_the_deployment_says_so(
    insecure_client: httpx.AsyncClient, url: str
) -> None:
    _, auth = await create_org_with_key(insecure_client)
    response = await insecure_client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert response.status_code == 201, response.text
    # Credentials in the URL stay refused: they would be sent to whoever answers.
    response = await insecure_client.post(
        "/v1/webhook-endpoints", json={"url": "http://u:p@127.0.0.1/"}, headers=auth
    )
    assert response.json()["error"]["code"] == "url_not_allowed"
