"""Tenant isolation of every webhook endpoint route: another organisation's endpoint or
delivery answers 404, to its API key and to the admin acting for it, and nothing changes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from callback_helpers import insert_event_with_deliveries
from factories import engine_for
from helpers import ADMIN, TEST_SECRET_KEY, create_org_with_key, make_settings
from wa_outbound.config import Settings

pytestmark = pytest.mark.asyncio

URL = "https://93.184.215.14/hooks/wa"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, secret_keys=TEST_SECRET_KEY)


def routes(endpoint_id: str, delivery_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/v1/webhook-endpoints/{endpoint_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False, "description": "taken over"}),
        ("POST", f"{base}/rotate-secret", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery_id}/retry", None),
        ("POST", f"{base}/recover", {"since": "2000-01-01T00:00:00Z"}),
        ("DELETE", base, None),
    ]


async def test_another_orgs_endpoints_and_deliveries_are_not_found(
    client: httpx.AsyncClient, database_url: str
) -> None:
    owner_id, owner = await create_org_with_key(client, "Acme")
    other_id, other = await create_org_with_key(client, "Globex")
    theirs = (await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=owner)).json()
    mine = (await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=other)).json()
    async with engine_for(database_url) as engine, engine.begin() as conn:
        event = await insert_event_with_deliveries(
            conn,
            org_id=owner_id,
            endpoint_ids=[uuid.UUID(theirs["id"])],
            message_id=uuid.uuid4(),
            status="failed",
            attempts=8,
        )
    delivery_id = str(event.deliveries[0])

    as_admin = {**ADMIN, "X-Org-Id": other_id}
    attempts = [
        *routes(theirs["id"], delivery_id),
        # The other org's own endpoint, with the owner's delivery under it.
        ("POST", f"/v1/webhook-endpoints/{mine['id']}/deliveries/{delivery_id}/retry", None),
    ]
    for headers in (other, as_admin):
        for method, path, body in attempts:
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
        listed = (await client.get("/v1/webhook-endpoints", headers=headers)).json()["items"]
        assert [item["id"] for item in listed] == [mine["id"]]

    # Nothing of the owner's changed.
    base = f"/v1/webhook-endpoints/{theirs['id']}"
    assert (await client.get(base, headers=owner)).json() == {
        k: v for k, v in theirs.items() if k != "secret"
    }
    items = (await client.get(f"{base}/deliveries", headers=owner)).json()["items"]
    assert [(d["id"], d["status"], d["attempts"]) for d in items] == [(delivery_id, "failed", 8)]
    # The owner and the admin acting for it reach them.
    for headers in (owner, {**ADMIN, "X-Org-Id": owner_id}):
        assert (await client.get(base, headers=headers)).status_code == 200
