"""Consent API."""

from __future__ import annotations

import httpx
import pytest

from helpers import create_org_with_key


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
