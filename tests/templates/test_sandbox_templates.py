"""The sandbox's registry, on SQLite and PostgreSQL: `order_update`, `promo_offer` and
`paused_template` for every sandbox sender, and the gates they make visible."""

from __future__ import annotations

from typing import Any

import httpx

from helpers import create_org_with_key, eventually, grant

USER = "+33612345678"
EXPECTED = [
    ("order_update", "en_US", "APPROVED", "UTILITY"),
    ("paused_template", "en_US", "PAUSED", "UTILITY"),
    ("promo_offer", "en_US", "APPROVED", "MARKETING"),
]


async def templates(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/v1/templates", headers=auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def shape(items: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(i["name"], i["language"], i["status"], i["category"]) for i in items]


async def test_every_sandbox_sender_has_the_three_templates(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)

    async def ready() -> bool:
        return len(await templates(client, auth)) == 3

    await eventually(ready)
    items = await templates(client, auth)
    assert shape(items) == EXPECTED
    assert {i["waba_id"] for i in items} == {"sandbox"}

    # An org's own sandbox number: its WABA is read at once, with the same three.
    body = {"phone_number_id": "5550001", "waba_id": "waba-own", "access_token": "sandbox-token"}
    assert (await client.post("/v1/senders", json=body, headers=auth)).status_code == 201

    async def own_ready() -> bool:
        return {i["waba_id"] for i in await templates(client, auth)} == {"waba-own"}

    await eventually(own_ready)
    assert shape(await templates(client, auth)) == EXPECTED


async def test_the_sandbox_refuses_what_meta_would(client: httpx.AsyncClient) -> None:
    _, auth = await create_org_with_key(client)

    async def ready() -> bool:
        return len(await templates(client, auth)) == 3

    await eventually(ready)
    await grant(client, auth, USER)
    put = {"marketing_opt_out": True}
    assert (await client.put(f"/v1/consents/{USER}", json=put, headers=auth)).status_code == 200

    async def post(name: str) -> httpx.Response:
        body = {"to": USER, "template": {"name": name, "language": "en_US"}}
        return await client.post("/v1/messages", json=body, headers=auth)

    assert (await post("order_update")).status_code == 202
    for name, code in (
        ("paused_template", "template_not_approved"),
        ("promo_offer", "marketing_opted_out"),
        ("no_such_template", "template_not_found"),
    ):
        response = await post(name)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
