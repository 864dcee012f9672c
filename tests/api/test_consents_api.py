"""Consent API."""

from __future__ import annotations

import httpx
import pytest

from helpers import ADMIN_TOKEN, create_org_with_key


async def test_grant_revoke_and_grant_again(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)
    missing = await client.get("/v1/consents/+33612345678", headers=auth)
    assert missing.status_code == 404

    granted = await client.put(
        "/v1/consents/0033612345678", json={"status": "granted", "source": "signup"}, headers=auth
    )
    assert granted.status_code == 200
    first = granted.json()
    assert first["phone"] == "+33612345678"
    assert (first["status"], first["source"], first["revoked_at"]) == ("granted", "signup", None)
    assert first["granted_at"] is not None

    again = (
        await client.put("/v1/consents/+33612345678", json={"status": "granted"}, headers=auth)
    ).json()
    assert again["granted_at"] == first["granted_at"], "a repeated grant keeps the first grant time"

    revoked = (
        await client.put("/v1/consents/33612345678", json={"status": "revoked"}, headers=auth)
    ).json()
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"] is not None
    assert revoked["granted_at"] == first["granted_at"]

    regranted = (
        await client.put("/v1/consents/33612345678", json={"status": "granted"}, headers=auth)
    ).json()
    assert regranted["revoked_at"] is None
    assert regranted["granted_at"] > first["granted_at"]
    fetched = (await client.get("/v1/consents/+33 6 12 34 56 78", headers=auth)).json()
    assert fetched == regranted


@pytest.mark.parametrize(
    ("phone", "payload"),
    [
        ("123", {"status": "granted"}),
        ("+33612345678", {"status": "maybe"}),
        ("+33612345678", {}),
        ("abc", {"status": "granted"}),
    ],
)
async def test_invalid_consent_requests(
    client: httpx.AsyncClient, phone: str, payload: dict[str, str]
) -> None:
    _, auth = await create_org_with_key(client)
    response = await client.put(f"/v1/consents/{phone}", json=payload, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_the_marketing_preference_is_set_alone_or_with_the_status(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await create_org_with_key(client)
    phone = "+33611111111"
    only = await client.put(f"/v1/consents/{phone}", json={"marketing_opt_out": True}, headers=auth)
    assert only.status_code == 200, only.text
    record = only.json()
    assert (record["status"], record["marketing_opt_out"]) == (None, True)

    granted = await client.put(f"/v1/consents/{phone}", json={"status": "granted"}, headers=auth)
    assert (granted.json()["status"], granted.json()["marketing_opt_out"]) == ("granted", True)
    both = await client.put(
        f"/v1/consents/{phone}",
        json={"status": "granted", "marketing_opt_out": False, "source": "preferences-page"},
        headers=auth,
    )
    assert (both.json()["marketing_opt_out"], both.json()["source"]) == (False, "preferences-page")


async def test_the_history_lists_every_change_oldest_first(client: httpx.AsyncClient) -> None:
    org_id, auth = await create_org_with_key(client)
    phone = "+33622222222"
    missing = await client.get(f"/v1/consents/{phone}/events", headers=auth)
    assert missing.status_code == 404
    for body in (
        {"status": "granted", "source": "signup"},
        {"marketing_opt_out": True, "source": "preferences-page"},
        {"status": "revoked", "source": "call-center"},
    ):
        assert (
            await client.put(f"/v1/consents/{phone}", json=body, headers=auth)
        ).status_code == 200
    response = await client.get(f"/v1/consents/{phone}/events", headers=auth)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [
        (i["from_status"], i["status"], i["marketing_opt_out"], i["source"]) for i in items
    ] == [
        (None, "granted", False, "signup"),
        ("granted", "granted", True, "preferences-page"),
        ("granted", "revoked", True, "call-center"),
    ]
    assert items[0]["at"] <= items[1]["at"] <= items[2]["at"]
    assert items[0]["from_marketing_opt_out"] is None
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Org-Id": org_id}
    as_admin = await client.get(f"/v1/consents/{phone}/events", headers=admin)
    assert as_admin.json() == response.json()
    _, other = await create_org_with_key(client, "Other")
    assert (await client.get(f"/v1/consents/{phone}/events", headers=other)).status_code == 404


async def test_erasing_the_contact_deletes_its_consent_history(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)
    phone = "+33633333333"
    for body in ({"status": "granted"}, {"marketing_opt_out": True}):
        assert (
            await client.put(f"/v1/consents/{phone}", json=body, headers=auth)
        ).status_code == 200
    assert (await client.delete(f"/v1/contacts/{phone}", headers=auth)).status_code == 200
    assert (await client.get(f"/v1/consents/{phone}/events", headers=auth)).status_code == 404
