"""List cursors on every paginated route, on SQLite and PostgreSQL: one not made by the API
(a time without a zone among them) is a validation error, never a server error; one whose time
is written in another zone pages from the same place."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import NOW, add_messages, dead_row, message_row
from helpers import ADMIN
from wa_outbound.db.pagination import decode_cursor
from wa_outbound.db.schema import alert

Org = tuple[str, dict[str, str]]
ROUTES = ["/v1/messages", "/v1/dlq", "/v1/alerts"]
ROW_ID = "6f1c9a8e-3b7d-4a52-9c1e-2d4f5a6b7c8d"


def cursor_of(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


async def add_rows(db_engine: AsyncEngine, route: str, org_id: str) -> None:
    """Three rows the route lists, a minute apart."""
    if route == "/v1/alerts":
        rows = [alert_row(minutes) for minutes in range(3)]
        async with db_engine.begin() as conn:
            await conn.execute(alert.insert(), rows)
        return
    row = dead_row if route == "/v1/dlq" else message_row
    await add_messages(
        db_engine, [row(org_id=org_id, age=timedelta(minutes=minutes)) for minutes in range(3)]
    )


def alert_row(minutes: int) -> dict[str, Any]:
    fired = NOW - timedelta(minutes=minutes)
    return {
        "id": uuid.uuid4(),
        "type": "queue_depth",
        "subject": f"s{minutes}",
        "severity": "warning",
        "state": "firing",
        "summary": f"alert {minutes}",
        "details": {},
        "first_fired_at": fired,
        "last_notified_at": fired,
        "notifications": 1,
        "updated_at": fired,
    }


def headers(route: str, auth: dict[str, str]) -> dict[str, str]:
    return ADMIN if route == "/v1/alerts" else auth


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(cursor_of("2026-11-30T12:00:00", ROW_ID), id="naive time"),
        pytest.param(cursor_of("0001-01-01T00:00:00+01:00", ROW_ID), id="before year 1 in UTC"),
        pytest.param(cursor_of("2026-11-30T12:00:00Z", ROW_ID, 1), id="three parts"),
        pytest.param(cursor_of("2026-11-30T12:00:00Z", "not-a-uuid"), id="not a uuid"),
        pytest.param("bm90IGpzb24", id="not json"),
    ],
)
async def test_a_cursor_the_api_did_not_make_is_a_validation_error(
    client: httpx.AsyncClient, org: Org, route: str, cursor: str
) -> None:
    _, auth = org
    response = await client.get(route, params={"cursor": cursor}, headers=headers(route, auth))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "validation_error",
        "cursor: not a cursor returned by this API",
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_a_cursor_written_in_another_zone_pages_from_the_same_place(
    client: httpx.AsyncClient, org: Org, db_engine: AsyncEngine, route: str
) -> None:
    org_id, auth = org
    await add_rows(db_engine, route, org_id)

    async def page(cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = await client.get(route, params=params, headers=headers(route, auth))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = await page()
    at, row_id = decode_cursor(first["next_cursor"])
    elsewhere = cursor_of(at.astimezone(timezone(timedelta(hours=5))).isoformat(), str(row_id))
    second = await page(first["next_cursor"])
    assert [item["id"] for item in (await page(elsewhere))["items"]] == [
        item["id"] for item in second["items"]
    ]
    assert second["items"][0]["id"] != first["items"][0]["id"]
