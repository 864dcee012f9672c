"""Admin API, API-key authentication and tenant isolation."""

from __future__ import annotations

import httpx
import pytest

from helpers import (
    ADMIN,
    TEMPLATE,
    app_client,
    create_org_with_key,
    eventually,
    grant,
    make_settings,
)
from wa_outbound.app import create_app

PHONE = "+33612345678"


async def test_create_and_read_org(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/admin/orgs",
        json={"id": "acme", "name": "Acme", "daily_quota": 50, "messages_per_second": 5},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    org = response.json()
    assert (org["id"], org["name"], org["daily_quota"], org["messages_per_second"]) == (
        "acme",
        "Acme",
        50,
        5.0,
    )
    fetched = await client.get("/v1/admin/orgs/acme", headers=ADMIN)
    assert fetched.json() == org


async def test_org_defaults_come_from_settings(client: httpx.AsyncClient) -> None:
    org = (await client.post("/v1/admin/orgs", json={"name": "Defaults"}, headers=ADMIN)).json()
    assert org["daily_quota"] == 1000
    assert org["messages_per_second"] is None, "no per-org cap unless one is set"
    assert org["id"].startswith("org_")


async def test_duplicate_org_id_conflicts(client: httpx.AsyncClient) -> None:
    await client.post("/v1/admin/orgs", json={"id": "dup", "name": "A"}, headers=ADMIN)
    again = await client.post("/v1/admin/orgs", json={"id": "dup", "name": "B"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"


async def test_unknown_org_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/admin/orgs/nope", headers=ADMIN)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    keys = await client.post("/v1/admin/orgs/nope/api-keys", json={}, headers=ADMIN)
    assert keys.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_admin_calls_need_the_admin_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/admin/orgs", json={"name": "X"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_admin_api_is_forbidden_without_a_configured_token(sqlite_url: str) -> None:
    async with app_client(create_app(make_settings(sqlite_url, admin_token=""))) as client:
        response = await client.post(
            "/v1/admin/orgs", json={"name": "X"}, headers={"Authorization": "Bearer x"}
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_org_key_cannot_call_admin(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)
    response = await client.post("/v1/admin/orgs", json={"name": "X"}, headers=auth)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wao_unknown"}, {"Authorization": "Token x"}]
)
async def test_org_calls_need_a_valid_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/messages", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_api_key_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, settings: object
) -> None:
    org_id, _ = await create_org_with_key(client)
    created = (
        await client.post(f"/v1/admin/orgs/{org_id}/api-keys", json={"name": "ci"}, headers=ADMIN)
    ).json()
    assert created["api_key"].startswith(created["prefix"])
    from sqlalchemy import select

    from wa_outbound.db.engine import create_engine
    from wa_outbound.db.schema import api_key

    engine = create_engine(settings)  # type: ignore[arg-type]
    try:
        async with engine.connect() as conn:
            stored = [tuple(r) for r in await conn.execute(select(api_key))]
    finally:
        await engine.dispose()
    assert stored
    assert not any(created["api_key"] in str(value) for row in stored for value in row)


async def test_revoked_key_stops_working_at_once(client: httpx.AsyncClient) -> None:
    org_id, _ = await create_org_with_key(client)
    created = (await client.post(f"/v1/admin/orgs/{org_id}/api-keys", headers=ADMIN)).json()
    auth = {"Authorization": f"Bearer {created['api_key']}"}
    assert (await client.get("/v1/messages", headers=auth)).status_code == 200
    revoke = await client.delete(f"/v1/admin/orgs/{org_id}/api-keys/{created['id']}", headers=ADMIN)
    assert revoke.status_code == 204
    assert (await client.get("/v1/messages", headers=auth)).status_code == 401
    again = await client.delete(f"/v1/admin/orgs/{org_id}/api-keys/{created['id']}", headers=ADMIN)
    assert again.status_code == 404


async def test_a_key_revoked_on_one_replica_stops_at_once_on_another(postgres_url: str) -> None:
    # Replica b would trust its cached key for a minute: only PostgreSQL's notification of the
    # revocation can make it answer 401 sooner.
    a = create_app(make_settings(postgres_url))
    b = create_app(make_settings(postgres_url, api_key_cache_seconds=60))
    async with app_client(a) as replica_a, app_client(b) as replica_b:
        org_id, _ = await create_org_with_key(replica_a)
        key = (
            await replica_a.post(f"/v1/admin/orgs/{org_id}/api-keys", json={}, headers=ADMIN)
        ).json()
        auth = {"Authorization": f"Bearer {key['api_key']}"}
        assert (await replica_b.get("/v1/messages", headers=auth)).status_code == 200
        revoke = await replica_a.delete(
            f"/v1/admin/orgs/{org_id}/api-keys/{key['id']}", headers=ADMIN
        )
        assert revoke.status_code == 204

        async def refused_by_b() -> bool:
            return (await replica_b.get("/v1/messages", headers=auth)).status_code == 401

        await eventually(refused_by_b, timeout_s=30)


async def test_another_orgs_message_answers_404(client: httpx.AsyncClient) -> None:
    _, alice = await create_org_with_key(client, "Alice")
    _, bob = await create_org_with_key(client, "Bob")
    await grant(client, alice, PHONE)
    message = (
        await client.post("/v1/messages", json={"to": PHONE, "template": TEMPLATE}, headers=alice)
    ).json()
    for method, path in [
        ("GET", f"/v1/messages/{message['id']}"),
        ("GET", f"/v1/messages/{message['id']}/events"),
        ("POST", f"/v1/messages/{message['id']}/cancel"),
        ("GET", f"/v1/consents/{PHONE}"),
    ]:
        response = await client.request(method, path, headers=bob)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/messages", headers=bob)).json()["items"] == []
    still = await client.get(f"/v1/messages/{message['id']}", headers=alice)
    assert still.json()["status"] == "QUEUED"


async def test_bad_message_id_is_validation_error(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)
    response = await client.get("/v1/messages/not-a-uuid", headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_unknown_route_uses_the_error_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
