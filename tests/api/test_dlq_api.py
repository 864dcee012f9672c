"""Dead-letter queue API: list, replay one and in bulk, discard, report; tenant isolation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from alert_factories import add_messages, dead_row
from factories import engine_for
from helpers import create_org_with_key
from wa_outbound.config import Settings
from wa_outbound.db.types import utcnow

Org = tuple[str, dict[str, str]]


async def _dead(settings: Settings, org_id: str, *codes: str) -> list[str]:
    now = utcnow()
    rows = [
        dead_row(
            code=code,
            title=f"title {code}",
            org_id=org_id,
            now=now,
            failed_at=now - timedelta(minutes=1),
            provider_message_id=f"wamid.{uuid.uuid4()}",
        )
        for code in codes
    ]
    async with engine_for(settings.database_url) as engine:
        await add_messages(engine, rows)
    return [str(row["id"]) for row in rows]


async def test_list_and_filter_the_dlq(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, auth = org
    ids = await _dead(settings, org_id, "131026", "132001", "132001")
    listing = (await client.get("/v1/dlq", headers=auth)).json()
    assert {m["id"] for m in listing["items"]} == set(ids)
    assert all(m["dead_lettered"] and m["status"] == "FAILED" for m in listing["items"])
    only = (await client.get("/v1/dlq", params={"error_code": "132001"}, headers=auth)).json()
    assert {m["id"] for m in only["items"]} == set(ids[1:])
    page = (await client.get("/v1/dlq", params={"limit": 2}, headers=auth)).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is not None


async def test_replay_one_resets_attempts_and_keeps_the_error_in_the_timeline(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, auth = org
    [message_id] = await _dead(settings, org_id, "131026")
    replayed = await client.post(f"/v1/dlq/{message_id}/replay", headers=auth)
    assert replayed.status_code == 202
    body = replayed.json()
    assert (body["status"], body["attempts"], body["dead_lettered"], body["error"]) == (
        "QUEUED",
        0,
        False,
        None,
    )
    events = (await client.get(f"/v1/messages/{message_id}/events", headers=auth)).json()
    last = events["items"][-1]
    assert (last["type"], last["from_status"], last["to_status"]) == (
        "replayed",
        "FAILED",
        "QUEUED",
    )
    assert last["details"]["previous_error"]["code"] == "131026"
    again = await client.post(f"/v1/dlq/{message_id}/replay", headers=auth)
    assert again.status_code == 404, "no longer in the DLQ"


async def test_bulk_replay_by_error_code_and_by_ids(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, auth = org
    ids = await _dead(settings, org_id, "190", "190", "131026", "132001")
    by_code = await client.post("/v1/dlq/replay", json={"error_code": "190"}, headers=auth)
    assert (by_code.status_code, by_code.json()) == (202, {"replayed": 2})
    by_ids = await client.post("/v1/dlq/replay", json={"ids": ids[2:]}, headers=auth)
    assert by_ids.json() == {"replayed": 2}
    assert (await client.get("/v1/dlq", headers=auth)).json()["items"] == []


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": ["nope"]}, {"error_code": ""}])
async def test_bulk_replay_needs_a_selector(
    client: httpx.AsyncClient, org: Org, body: dict[str, Any]
) -> None:
    response = await client.post("/v1/dlq/replay", json=body, headers=org[1])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_discard_keeps_the_message_failed_but_out_of_the_dlq(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, auth = org
    [message_id] = await _dead(settings, org_id, "131026")
    assert (await client.delete(f"/v1/dlq/{message_id}", headers=auth)).status_code == 204
    message = (await client.get(f"/v1/messages/{message_id}", headers=auth)).json()
    assert (message["status"], message["dead_lettered"]) == ("FAILED", False)
    assert message["error"]["code"] == "131026"
    assert (await client.delete(f"/v1/dlq/{message_id}", headers=auth)).status_code == 404


async def test_report_groups_codes_with_recommendations(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, auth = org
    await _dead(settings, org_id, "190", "190", "132001")
    report = (await client.get("/v1/dlq/report", headers=auth)).json()
    assert report["total_failed"] == 3
    assert report["by_channel"] == {"WHATSAPP": 3}
    assert report["window_hours"] == 24
    assert [(c["code"], c["count"]) for c in report["top_error_codes"]] == [
        ("190", 2),
        ("132001", 1),
    ]
    assert "rotate" in report["recommendations"][0]


async def test_another_orgs_dead_letters_are_invisible(
    client: httpx.AsyncClient, org: Org, settings: Settings
) -> None:
    org_id, _ = org
    [message_id] = await _dead(settings, org_id, "131026")
    _, other = await create_org_with_key(client, "Other")
    assert (await client.get("/v1/dlq", headers=other)).json()["items"] == []
    assert (await client.post(f"/v1/dlq/{message_id}/replay", headers=other)).status_code == 404
    assert (await client.delete(f"/v1/dlq/{message_id}", headers=other)).status_code == 404
    bulk = await client.post("/v1/dlq/replay", json={"ids": [message_id]}, headers=other)
    assert bulk.json() == {"replayed": 0}
    assert (await client.get("/v1/dlq/report", headers=other)).json()["total_failed"] == 0
