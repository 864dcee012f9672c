"""`GET /v1/health/channels`: one organisation's queue, DLQ and last hour, from the database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from factories import engine_for, insert_message, insert_org
from wa_outbound.db.types import utcnow
from wa_outbound.monitoring.channel_health import percentile

Org = tuple[str, dict[str, str]]
URL = "/v1/health/channels"


async def add(conn: AsyncConnection, org_id: str, status: str, **columns: Any) -> None:
    await insert_message(conn, org_id=org_id, status=status, **columns)


async def test_an_organisation_with_no_traffic_has_zeros_and_no_percentile(
    client: httpx.AsyncClient, org: Org
) -> None:
    response = await client.get(URL, headers=org[1])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "channels": {
            "WHATSAPP": {
                "queue_depth": 0,
                "dlq_size": 0,
                "sent_1h": 0,
                "failed_1h": 0,
                "failure_rate_1h": 0.0,
                "p95_send_seconds": None,
            }
        }
    }


async def test_channel_health_counts_the_last_hour_of_this_organisation_only(
    client: httpx.AsyncClient, org: Org, database_url: str
) -> None:
    org_id, auth = org
    now = utcnow()
    async with engine_for(database_url) as engine, engine.begin() as conn:
        accepted_at = now - timedelta(minutes=10)
        # Twenty acceptances in the hour, due 1..20 s before Meta accepted them; the last
        # one then failed by webhook (so it is both sent and failed).
        for wait_s in range(1, 21):
            failed_later = wait_s == 20
            await add(
                conn,
                org_id,
                "FAILED" if failed_later else "DELIVERED",
                wamid=f"wamid.{uuid.uuid4().hex}",
                accepted_at=accepted_at,
                next_attempt_at=accepted_at - timedelta(seconds=wait_s),
                created_at=accepted_at - timedelta(hours=3),  # waited for its send_after
                **(
                    {"failed_at": now, "dead_lettered": True, "error_code": "131026"}
                    if failed_later
                    else {}
                ),
            )
        refused = {"failed_at": now - timedelta(minutes=1), "error_code": "132001"}
        await add(conn, org_id, "FAILED", dead_lettered=True, **refused)
        # Not failures of the hour: a revoked consent, and a failure of three hours ago.
        await add(conn, org_id, "FAILED", failed_at=now, error_code="consent_revoked")
        old = {"failed_at": now - timedelta(hours=3), "error_code": "131026"}
        await add(conn, org_id, "FAILED", dead_lettered=True, **old)
        await add(
            conn,
            org_id,
            "READ",
            wamid=f"wamid.{uuid.uuid4().hex}",
            accepted_at=now - timedelta(hours=2),
        )
        for status in ("QUEUED", "QUEUED", "RETRYING", "SENDING"):
            await add(conn, org_id, status)
        other = await insert_org(conn)
        for status in ("QUEUED", "ACCEPTED", "FAILED"):
            await add(
                conn,
                other,
                status,
                wamid=f"wamid.{uuid.uuid4().hex}",
                failed_at=now,
                dead_lettered=status == "FAILED",
            )

    response = await client.get(URL, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["channels"]["WHATSAPP"] == {
        "queue_depth": 4,
        "dlq_size": 3,
        "sent_1h": 20,
        "failed_1h": 2,
        "failure_rate_1h": round(2 / 21, 4),
        "p95_send_seconds": 19.05,
    }


async def test_channel_health_needs_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.95, None),
        ([4.0], 0.95, 4.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([float(n) for n in range(1, 21)], 0.95, 19.05),
        ([5.0, 1.0, 3.0], 1.0, 5.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks_like_percentile_cont(
    values: list[float], q: float, expected: float | None
) -> None:
    result = percentile(values, q)
    assert result == (None if expected is None else pytest.approx(expected))
