"""The senders API against the fake Graph API: verification, the one-default rule, deletion,
tenant isolation, the admin acting for an org, and choosing the sender of a message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import meta_payloads as meta
from cloud_app import TOKEN, CloudApp, cloud_app
from helpers import ADMIN, TEMPLATE, create_org_with_key, eventually, grant

pytestmark = pytest.mark.asyncio

WABA = "waba-1"
NUMBERS = {"1001": "token-one-0001", "1002": "token-two-0002", "1003": "token-three-0003"}


@pytest.fixture
async def app(postgres_url: str) -> AsyncIterator[CloudApp]:
    async with cloud_app(postgres_url, dispatch_enabled=False) as app:
        app.fake.add_number(meta.PHONE_NUMBER_ID, token=TOKEN, waba_id="waba-shared")
        for number, token in NUMBERS.items():
            app.fake.add_number(
                number, token=token, waba_id=WABA, display_phone_number=f"+1 555-000-{number}"
            )
        yield app


def body(number: str = "1001", **extra: Any) -> dict[str, Any]:
    return {
        "phone_number_id": number,
        "waba_id": WABA,
        "access_token": NUMBERS.get(number, "token-unknown-9999"),
        **extra,
    }


async def create(client: httpx.AsyncClient, auth: dict[str, str], **kwargs: Any) -> Any:
    response = await client.post("/v1/senders", json=body(**kwargs), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_sender_is_verified_with_meta_and_never_shows_its_token(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    created = await create(app.client, auth, name="Support")
    assert created["display_phone_number"] == "+1 555-000-1001"
    assert created["messaging_limit"] == "TIER_2K"
    assert created["quality_rating"] == "GREEN"
    assert created["default"] is True
    assert created["status"] == "active"
    assert created["paused_reasons"] == []
    assert created["token_last4"] == "0001"
    assert NUMBERS["1001"] not in str(created)
    listed = (await app.client.get("/v1/senders", headers=auth)).json()["items"]
    assert [s["id"] for s in listed] == [created["id"]]
    # Meta was asked with the sender's own token.
    assert app.fake.numbers.by_id["1001"].token == NUMBERS["1001"]


@pytest.mark.parametrize(
    ("number", "token", "meta_code"),
    [("1001", "token-wrong-0000", 190), ("1001", NUMBERS["1002"], 100)],
)
async def test_a_number_meta_does_not_confirm_is_not_stored(
    app: CloudApp, number: str, token: str, meta_code: int
) -> None:
    _, auth = await create_org_with_key(app.client)
    response = await app.client.post(
        "/v1/senders",
        json={"phone_number_id": number, "waba_id": WABA, "access_token": token},
        headers=auth,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "sender_verification_failed"
    assert error["details"]["meta_code"] == meta_code
    assert token not in response.text
    assert (await app.client.get("/v1/senders", headers=auth)).json()["items"] == []


async def test_a_number_outside_its_waba_is_refused(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    app.fake.add_number("2001", token="token-other-2001", waba_id="waba-2")
    response = await app.client.post(
        "/v1/senders",
        json={"phone_number_id": "2001", "waba_id": WABA, "access_token": "token-other-2001"},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "sender_verification_failed"


async def test_a_number_is_registered_once(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client, "A")
    _, other = await create_org_with_key(app.client, "B")
    await create(app.client, auth)
    for headers in (auth, other):
        again = await app.client.post("/v1/senders", json=body(), headers=headers)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "sender_exists"
    shared = await app.client.post(
        "/v1/senders",
        json={
            "phone_number_id": meta.PHONE_NUMBER_ID,
            "waba_id": "waba-shared",
            "access_token": TOKEN,
        },
        headers=other,
    )
    assert shared.status_code == 409


async def test_every_sender_route_is_isolated_between_orgs(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client, "A")
    _, other = await create_org_with_key(app.client, "B")
    created = await create(app.client, auth)
    path = f"/v1/senders/{created['id']}"
    assert (await app.client.get(path, headers=other)).status_code == 404
    assert (await app.client.patch(path, json={"name": "x"}, headers=other)).status_code == 404
    assert (await app.client.delete(path, headers=other)).status_code == 404
    assert (await app.client.get("/v1/senders", headers=other)).json()["items"] == []
    # Nothing changed for its owner.
    mine = (await app.client.get(path, headers=auth)).json()
    assert mine["name"] is None
    assert mine["status"] == "active"


async def test_the_admin_acts_for_the_org_in_x_org_id(app: CloudApp) -> None:
    org_id, auth = await create_org_with_key(app.client)
    created = await create(app.client, {**ADMIN, "X-Org-Id": org_id})
    assert created["org_id"] == org_id
    path = f"/v1/senders/{created['id']}"
    assert (await app.client.get(path, headers=auth)).status_code == 200
    assert (await app.client.get("/v1/senders", headers=ADMIN)).status_code == 422
    unknown = await app.client.get("/v1/senders", headers={**ADMIN, "X-Org-Id": "nope"})
    assert unknown.status_code == 404
    refused = await app.client.patch(path, json={"messaging_limit": "TIER_10K"}, headers=auth)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_only"
    changed = await app.client.patch(
        path, json={"messaging_limit": "TIER_10K"}, headers={**ADMIN, "X-Org-Id": org_id}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["messaging_limit"] == "TIER_10K"


async def test_exactly_one_default_per_org(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    first = await create(app.client, auth, number="1001")
    second = await create(app.client, auth, number="1002")
    assert first["default"]
    assert not second["default"]
    refused = await app.client.patch(
        f"/v1/senders/{first['id']}", json={"default": False}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "default_required"
    moved = await app.client.patch(
        f"/v1/senders/{second['id']}", json={"default": True}, headers=auth
    )
    assert moved.json()["default"] is True
    items = (await app.client.get("/v1/senders", headers=auth)).json()["items"]
    assert [s["default"] for s in items] == [False, True]
    third = await create(app.client, auth, number="1003", default=True)
    items = (await app.client.get("/v1/senders", headers=auth)).json()["items"]
    assert [s["id"] for s in items if s["default"]] == [third["id"]]
    in_use = await app.client.delete(f"/v1/senders/{third['id']}", headers=auth)
    assert in_use.status_code == 409
    assert in_use.json()["error"]["code"] == "sender_is_default"


async def test_pausing_by_hand_and_resuming(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    created = await create(app.client, auth)
    path = f"/v1/senders/{created['id']}"
    paused = (await app.client.patch(path, json={"paused": True}, headers=auth)).json()
    assert paused["status"] == "paused"
    assert paused["paused_reasons"] == ["manual"]
    assert paused["paused_at"] is not None
    resumed = (await app.client.patch(path, json={"paused": False}, headers=auth)).json()
    assert resumed["status"] == "active"
    assert resumed["paused_at"] is None


async def test_a_new_token_is_verified_before_it_replaces_the_old(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    created = await create(app.client, auth)
    path = f"/v1/senders/{created['id']}"
    bad = await app.client.patch(path, json={"access_token": "token-bad-12345"}, headers=auth)
    assert bad.status_code == 422
    assert (await app.client.get(path, headers=auth)).json()["token_last4"] == "0001"
    app.fake.numbers.by_id["1001"].token = "token-new-7777"
    good = await app.client.patch(path, json={"access_token": "token-new-7777"}, headers=auth)
    assert good.status_code == 200, good.text
    assert good.json()["token_last4"] == "7777"


async def test_messages_choose_their_sender(app: CloudApp) -> None:
    org_id, auth = await create_org_with_key(app.client, "A")
    _, other = await create_org_with_key(app.client, "B")
    await grant(app.client, auth, "+33612345678")
    await grant(app.client, other, "+33612345678")
    shared = await app.client.post(
        "/v1/messages", json={"to": "+33612345678", "template": TEMPLATE}, headers=auth
    )
    assert shared.status_code == 202
    assert shared.json()["sender_id"] is None
    first = await create(app.client, auth, number="1001")
    second = await create(app.client, auth, number="1002")
    cases = [
        (None, first["id"]),
        (second["id"], second["id"]),
        ("+15550001002", second["id"]),
        ("+1 555-000-1001", first["id"]),
    ]
    for wanted, expected in cases:
        payload: dict[str, Any] = {"to": "+33612345678", "template": TEMPLATE}
        if wanted is not None:
            payload["from"] = wanted
        response = await app.client.post("/v1/messages", json=payload, headers=auth)
        assert response.status_code == 202, response.text
        assert response.json()["sender_id"] == expected
        assert response.json()["waiting_reason"] is None
    for wanted in ("+15550009999", first["id"]):
        refused = await app.client.post(
            "/v1/messages",
            json={"to": "+33612345678", "template": TEMPLATE, "from": wanted},
            headers=other,
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "unknown_sender"
    batch = await app.client.post(
        "/v1/messages/batch",
        json={
            "messages": [
                {"to": "+33612345678", "template": TEMPLATE, "from": second["id"]},
                {"to": "+33612345678", "template": TEMPLATE, "from": "nope"},
            ]
        },
        headers=auth,
    )
    results = batch.json()["results"]
    assert results[0]["message"]["sender_id"] == second["id"]
    assert results[1]["error"]["code"] == "unknown_sender"
    assert org_id


async def test_without_a_shared_sender_an_org_needs_its_own(postgres_url: str) -> None:
    async with cloud_app(postgres_url, phone_number_id="", access_token="") as app:
        _, auth = await create_org_with_key(app.client)
        await grant(app.client, auth, "+33612345678")
        refused = await app.client.post(
            "/v1/messages", json={"to": "+33612345678", "template": TEMPLATE}, headers=auth
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "no_sender"


async def test_deleting_a_sender_with_waiting_messages(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    await grant(app.client, auth, "+33612345678")
    created = await create(app.client, auth)
    queued = await app.client.post(
        "/v1/messages", json={"to": "+33612345678", "template": TEMPLATE}, headers=auth
    )
    path = f"/v1/senders/{created['id']}"
    in_use = await app.client.delete(path, headers=auth)
    assert in_use.status_code == 409
    assert in_use.json()["error"] == {
        "code": "sender_in_use",
        "message": in_use.json()["error"]["message"],
        "details": {"waiting": 1},
    }
    assert (await app.client.delete(f"{path}?cancel_waiting=true", headers=auth)).status_code == 204
    message = await app.client.get(f"/v1/messages/{queued.json()['id']}", headers=auth)
    assert message.json()["status"] == "CANCELLED"
    assert (await app.client.get(path, headers=auth)).status_code == 404
    # The number is free again.
    await create(app.client, auth)


async def test_a_revoked_token_pauses_its_sender_and_a_new_one_resumes_it(
    postgres_url: str,
) -> None:
    async with cloud_app(postgres_url) as app:
        for number, token in NUMBERS.items():
            app.fake.add_number(number, token=token, waba_id=WABA)
        _, auth = await create_org_with_key(app.client)
        first = await create(app.client, auth, number="1001")
        second = await create(app.client, auth, number="1002")
        app.fake.revoke_token(NUMBERS["1001"])
        phones = [f"+3361{i:07d}" for i in range(55)]
        for phone_number in phones:
            await grant(app.client, auth, phone_number)
        items = [
            {"to": p, "template": TEMPLATE, "from": first["id"] if i < 50 else second["id"]}
            for i, p in enumerate(phones)
        ]
        batch = await app.client.post("/v1/messages/batch", json={"messages": items}, headers=auth)
        ids = [r["message"]["id"] for r in batch.json()["results"]]

        async def status(message_id: str) -> Any:
            return (await app.client.get(f"/v1/messages/{message_id}", headers=auth)).json()

        async def paused() -> bool:
            found = await app.client.get(f"/v1/senders/{first['id']}", headers=auth)
            return bool(found.json()["paused_reasons"] == ["token_invalid"])

        async def all_accepted(some: list[str]) -> bool:
            return {(await status(i))["status"] for i in some} == {"ACCEPTED"}

        await eventually(paused)
        await eventually(lambda: all_accepted(ids[50:]))
        second_now = (await app.client.get(f"/v1/senders/{second['id']}", headers=auth)).json()
        assert second_now["status"] == "active"

        async def all_waiting() -> bool:
            waiting = [await status(i) for i in ids[:50]]
            found = {(m["status"], m["attempts"], m["waiting_reason"]) for m in waiting}
            return found == {("QUEUED", 0, "sender_paused")}

        # Those in flight when the first refusal came back are answered 401 too, then wait.
        await eventually(all_waiting)

        app.fake.numbers.by_id["1001"].token = "token-fresh-5555"
        patched = await app.client.patch(
            f"/v1/senders/{first['id']}", json={"access_token": "token-fresh-5555"}, headers=auth
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["status"] == "active"
        await eventually(lambda: all_accepted(ids[:50]))
        sent = [await status(i) for i in ids[:50]]
        assert {(m["status"], m["attempts"]) for m in sent} == {("ACCEPTED", 1)}
        fresh = [
            r for r in app.fake.received.requests if r.phone_number_id == "1001" and r.status == 200
        ]
        assert len(fresh) == 50
        assert {r.authorization for r in fresh} == {"Bearer token-fresh-5555"}


async def test_a_message_queued_on_a_paused_sender_waits_from_the_start(app: CloudApp) -> None:
    _, auth = await create_org_with_key(app.client)
    await grant(app.client, auth, "+33612345678")
    created = await create(app.client, auth)
    await app.client.patch(f"/v1/senders/{created['id']}", json={"paused": True}, headers=auth)
    one = await app.client.post(
        "/v1/messages", json={"to": "+33612345678", "template": TEMPLATE}, headers=auth
    )
    batch = await app.client.post(
        "/v1/messages/batch",
        json={"messages": [{"to": "+33612345678", "template": TEMPLATE}]},
        headers=auth,
    )
    queued = [one.json(), batch.json()["results"][0]["message"]]
    assert [(m["status"], m["waiting_reason"]) for m in queued] == [
        ("QUEUED", "sender_paused"),
        ("QUEUED", "sender_paused"),
    ]
    await app.client.patch(f"/v1/senders/{created['id']}", json={"paused": False}, headers=auth)
    for message in queued:
        found = await app.client.get(f"/v1/messages/{message['id']}", headers=auth)
        assert found.json()["waiting_reason"] is None
