"""The quota API: an org reads its own quota with its key; the admin changes any org's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from helpers import ADMIN, app_client, create_org_with_key, make_settings
from ratelimit_helpers import forget
from wa_outbound.app import create_app

QUOTA = "/v1/rate-limits/whatsapp/quota"


async def test_an_org_reads_its_quota_with_the_defaults(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, auth = org
    response = await client.get(QUOTA, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "resets_at"} == {
        "org_id": org_id,
        "limit": 1000,
        "used": 0,
        "remaining": 1000,
        "window_seconds": 86400,
        "throttled": False,
        "messages_per_second": None,  # no per-org cap unless one is set
        "backend": "database",
    }
    assert datetime.fromisoformat(body["resets_at"]).utcoffset() is not None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_reading_the_quota_needs_an_api_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(QUOTA, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_the_admin_changes_an_orgs_quota_and_the_org_sees_it(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, auth = org
    response = await client.put(
        QUOTA,
        json={"limit": 5, "window_seconds": 3600, "messages_per_second": 2.5},
        headers={**ADMIN, "X-Org-Id": org_id},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["limit"], changed["window_seconds"], changed["messages_per_second"]) == (
        5,
        3600,
        2.5,
    )
    assert (changed["remaining"], changed["org_id"]) == (5, org_id)
    seen = (await client.get(QUOTA, headers=auth)).json()
    assert (seen["limit"], seen["window_seconds"], seen["messages_per_second"]) == (5, 3600, 2.5)
    admin_view = (await client.get(f"/v1/admin/orgs/{org_id}", headers=ADMIN)).json()
    assert (admin_view["daily_quota"], admin_view["messages_per_second"]) == (5, 2.5)


async def test_fields_left_out_keep_their_values(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, _ = org
    headers = {**ADMIN, "X-Org-Id": org_id}
    await client.put(QUOTA, json={"limit": 7}, headers=headers)
    body = (await client.put(QUOTA, json={"messages_per_second": 9}, headers=headers)).json()
    assert (body["limit"], body["window_seconds"], body["messages_per_second"]) == (7, 86400, 9)


async def test_a_quota_of_zero_throttles_the_org(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, _ = org
    response = await client.put(QUOTA, json={"limit": 0}, headers={**ADMIN, "X-Org-Id": org_id})
    assert response.status_code == 200
    assert (response.json()["remaining"], response.json()["throttled"]) == (0, True)


async def test_an_org_key_cannot_change_a_quota(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, auth = org
    response = await client.put(QUOTA, json={"limit": 1}, headers={**auth, "X-Org-Id": org_id})
    assert response.status_code == 401


async def test_changing_a_quota_is_forbidden_without_an_admin_token(sqlite_url: str) -> None:
    async with app_client(create_app(make_settings(sqlite_url, admin_token=""))) as client:
        response = await client.put(
            QUOTA, json={"limit": 1}, headers={"Authorization": "Bearer x", "X-Org-Id": "a"}
        )
    assert response.status_code == 403


async def test_changing_the_quota_of_an_unknown_org_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(QUOTA, json={"limit": 1}, headers={**ADMIN, "X-Org-Id": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_changing_a_quota_needs_the_org_header(client: httpx.AsyncClient) -> None:
    response = await client.put(QUOTA, json={"limit": 1}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        {"limit": -1},
        {"limit": 1.5},
        {"limit": "5"},
        {"window_seconds": 0},
        {"messages_per_second": 0},
        {"messages_per_second": -2},
        {"daily_quota": 5},
    ],
)
async def test_invalid_quota_changes_are_refused(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]], body: dict[str, Any]
) -> None:
    org_id, _ = org
    response = await client.put(QUOTA, json=body, headers={**ADMIN, "X-Org-Id": org_id})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


async def test_each_org_sees_only_its_own_quota(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    org_id, auth = org
    other_id, _ = await create_org_with_key(client, name="Other")
    await client.put(QUOTA, json={"limit": 3}, headers={**ADMIN, "X-Org-Id": other_id})
    mine = (await client.get(QUOTA, headers={**auth, "X-Org-Id": other_id})).json()
    assert (mine["org_id"], mine["limit"]) == (org_id, 1000)


async def test_with_redis_configured_the_quota_says_redis_decides(
    postgres_url: str, redis_url: str
) -> None:
    app = create_app(make_settings(postgres_url, redis_url=redis_url))
    async with app_client(app) as client:
        org_id, auth = await create_org_with_key(client)
        try:
            changed = await client.put(
                QUOTA, json={"limit": 2}, headers={**ADMIN, "X-Org-Id": org_id}
            )
            assert changed.json()["backend"] == "redis"
            body = (await client.get(QUOTA, headers=auth)).json()
            assert (body["limit"], body["backend"]) == (2, "redis")
        finally:
            await forget(redis_url, org_id)
