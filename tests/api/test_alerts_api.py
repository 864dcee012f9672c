"""GET /v1/alerts (admin token): the alert history, filtered and paginated."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import NOW
from helpers import ADMIN, app_client, make_settings
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.db.schema import alert

FIELDS = {
    "id",
    "type",
    "severity",
    "state",
    "summary",
    "details",
    "first_fired_at",
    "last_notified_at",
    "resolved_at",
    "notifications",
}


def alert_row(minutes: int, state: str = "firing", **overrides: Any) -> dict[str, Any]:
    fired = NOW + timedelta(minutes=minutes)
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": "queue_depth",
        "subject": f"s{minutes}",
        "severity": "warning",
        "state": state,
        "summary": f"alert {minutes}",
        "details": {"queue_depth": 1000 + minutes},
        "first_fired_at": fired,
        "last_notified_at": fired,
        "resolved_at": fired + timedelta(minutes=1) if state == "resolved" else None,
        "notifications": 1,
        "updated_at": fired,
    }
    row.update(overrides)
    return row


async def add_alerts(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(alert.insert(), rows)


async def test_alerts_are_listed_newest_first_in_the_contract_shape(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    await add_alerts(
        db_engine,
        [
            alert_row(0, "resolved"),
            alert_row(2, severity="critical", type="dlq_growth"),
            alert_row(1),
        ],
    )
    response = await client.get("/v1/alerts", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["summary"] for item in body["items"]] == ["alert 2", "alert 1", "alert 0"]
    first = body["items"][0]
    assert set(first) == FIELDS
    assert first["type"] == "dlq_growth"
    assert first["severity"] == "critical"
    assert first["details"] == {"queue_depth": 1002}
    assert first["notifications"] == 1
    assert first["resolved_at"] is None
    assert body["items"][2]["resolved_at"] is not None


async def test_alerts_can_be_filtered_by_state(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    await add_alerts(db_engine, [alert_row(0, "resolved"), alert_row(1), alert_row(2, "resolved")])
    firing = (await client.get("/v1/alerts?state=firing", headers=ADMIN)).json()
    resolved = (await client.get("/v1/alerts?state=resolved", headers=ADMIN)).json()
    assert [i["summary"] for i in firing["items"]] == ["alert 1"]
    assert [i["summary"] for i in resolved["items"]] == ["alert 2", "alert 0"]


async def test_alerts_are_paginated_with_a_cursor(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    # Two incidents fired in the same instant: the id breaks the tie, none is skipped.
    await add_alerts(db_engine, [alert_row(i) for i in range(5)] + [alert_row(4, subject="x")])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/alerts", params=params, headers=ADMIN)).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 6


async def test_listing_alerts_needs_the_admin_token(
    client: httpx.AsyncClient, org: tuple[str, dict[str, str]]
) -> None:
    _, api_key = org
    assert (await client.get("/v1/alerts")).status_code == 401
    response = await client.get("/v1/alerts", headers=api_key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_alerts_answer_403_when_no_admin_token_is_configured(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, admin_token="")
    async with app_client(create_app(settings)) as client:
        response = await client.get("/v1/alerts", headers=ADMIN)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_bad_state_limit_or_cursor_is_a_validation_error(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for query in ("state=open", "limit=0", "limit=501", "cursor=nonsense"):
        response = await client.get(f"/v1/alerts?{query}", headers=ADMIN)
        assert response.status_code == 422, query
        assert response.json()["error"]["code"] == "validation_error"
