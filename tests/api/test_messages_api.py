"""Messages API on SQLite and PostgreSQL: queue, idempotency, consent, read, list, cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from helpers import TEMPLATE, grant

PHONE = "+33612345678"
Org = tuple[str, dict[str, str]]


def body(to: str = PHONE, **extra: Any) -> dict[str, Any]:
    return {"to": to, "template": TEMPLATE, **extra}


async def test_queue_template_message(client: httpx.AsyncClient, org: Org) -> None:
    org_id, auth = org
    await grant(client, auth, PHONE)
    response = await client.post(
        "/v1/messages", json=body(metadata={"order_id": "42"}), headers=auth
    )
    assert response.status_code == 202, response.text
    message = response.json()
    assert message["status"] == "QUEUED"
    assert message["org_id"] == org_id
    assert message["to"] == PHONE
    assert message["kind"] == "template"
    assert message["template"]["name"] == "order_update"
    assert message["text"] is None
    assert message["metadata"] == {"order_id": "42"}
    assert message["attempts"] == 0
    assert message["max_attempts"] == 5
    assert message["channel"] == "WHATSAPP"
    assert message["dead_lettered"] is False
    assert message["error"] is None
    assert message["created_at"].endswith("Z") or message["created_at"].endswith("+00:00")

    fetched = await client.get(f"/v1/messages/{message['id']}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json() == message

    events = (await client.get(f"/v1/messages/{message['id']}/events", headers=auth)).json()
    assert [(e["type"], e["to_status"]) for e in events["items"]] == [("queued", "QUEUED")]
    assert events["items"][0]["actor"].startswith("api_key:")


async def test_phone_is_normalised_to_e164(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, "33 6-12-34-56-78")
    response = await client.post("/v1/messages", json=body(to="+33 6 12 34 56 78"), headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["to"] == PHONE


async def test_message_without_consent_is_refused_and_not_stored(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    response = await client.post("/v1/messages", json=body(), headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "consent_required"
    listing = (await client.get("/v1/messages", headers=auth)).json()
    assert listing["items"] == []


async def test_revoked_consent_refuses_new_messages(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    revoke = await client.put(f"/v1/consents/{PHONE}", json={"status": "revoked"}, headers=auth)
    assert revoke.status_code == 200
    response = await client.post("/v1/messages", json=body(), headers=auth)
    assert response.json()["error"]["code"] == "consent_required"


async def test_text_outside_service_window_is_refused(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    response = await client.post(
        "/v1/messages", json={"to": PHONE, "text": {"body": "hello"}}, headers=auth
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "outside_service_window"


async def test_idempotent_replay_returns_the_original(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    headers = {**auth, "Idempotency-Key": "order-42"}
    first = await client.post("/v1/messages", json=body(), headers=headers)
    second = await client.post("/v1/messages", json=body(), headers=headers)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    conflict = await client.post("/v1/messages", json=body(metadata={"x": "y"}), headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    listing = (await client.get("/v1/messages", headers=auth)).json()
    assert len(listing["items"]) == 1


async def test_concurrent_duplicates_create_exactly_one_message(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    headers = {**auth, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post("/v1/messages", json=body(), headers=headers) for _ in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    listing = (await client.get("/v1/messages", headers=auth)).json()
    assert len(listing["items"]) == 1


async def test_idempotency_keys_are_scoped_per_org(client: httpx.AsyncClient, org: Org) -> None:
    from helpers import create_org_with_key

    _, auth = org
    _, other = await create_org_with_key(client, "Other")
    for headers in (auth, other):
        await grant(client, headers, PHONE)
    first = await client.post("/v1/messages", json=body(), headers={**auth, "Idempotency-Key": "k"})
    second = await client.post(
        "/v1/messages", json=body(), headers={**other, "Idempotency-Key": "k"}
    )
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"to": "12", "template": TEMPLATE}, "to"),
        ({"to": "+33612345678"}, "exactly one"),
        ({"to": PHONE, "template": TEMPLATE, "text": {"body": "x"}}, "exactly one"),
        ({"to": PHONE, "template": {"name": "Bad Name!", "language": "en_US"}}, "template.name"),
        (
            {
                "to": PHONE,
                "template": {"name": "x", "language": "en_US", "components": [{"type": "weird"}]},
            },
            "template.components",
        ),
        (
            {"to": PHONE, "template": TEMPLATE, "metadata": {f"k{i}": "v" for i in range(21)}},
            "metadata",
        ),
        ({"to": PHONE, "template": TEMPLATE, "metadata": {"k": 1}}, "metadata"),
        ({"to": PHONE, "template": TEMPLATE, "send_after": "tomorrow"}, "send_after"),
        # Not read as Unix seconds: the schema offers RFC 3339 strings only.
        ({"to": PHONE, "template": TEMPLATE, "send_after": 0}, "send_after"),
        ({"to": PHONE, "template": TEMPLATE, "send_after": "1767225600"}, "send_after"),
        ({"to": PHONE, "template": TEMPLATE, "send_after": "2026-12-01"}, "send_after"),
        (
            {"to": PHONE, "template": TEMPLATE, "send_after": "9999-12-31T23:00:00-02:00"},
            "send_after",
        ),
        ({"to": PHONE, "template": TEMPLATE, "unknown": 1}, "unknown"),
        ({"to": 33612345678, "template": TEMPLATE}, "to"),
        ([1, 2], "body"),
    ],
)
async def test_invalid_bodies_answer_validation_error(
    client: httpx.AsyncClient, org: Org, payload: Any, field: str
) -> None:
    _, auth = org
    response = await client.post("/v1/messages", json=payload, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"] or field in str(error["details"])


async def test_non_json_body_answers_400(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    response = await client.post(
        "/v1/messages", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_send_after_sets_next_attempt_at(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    response = await client.post(
        "/v1/messages", json=body(send_after="2099-12-01T09:00:00Z"), headers=auth
    )
    assert response.status_code == 202
    assert response.json()["next_attempt_at"].startswith("2099-12-01T09:00:00")


async def test_cancel_queued_message_then_not_cancellable(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    message = (await client.post("/v1/messages", json=body(), headers=auth)).json()
    cancelled = await client.post(f"/v1/messages/{message['id']}/cancel", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    again = await client.post(f"/v1/messages/{message['id']}/cancel", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_cancellable"
    events = (await client.get(f"/v1/messages/{message['id']}/events", headers=auth)).json()
    assert [e["to_status"] for e in events["items"]] == ["QUEUED", "CANCELLED"]
    assert events["items"][1]["from_status"] == "QUEUED"


async def test_list_paginates_newest_first_with_filters(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    other = "+4915112345678"
    await grant(client, auth, PHONE)
    await grant(client, auth, other)
    ids = []
    for i in range(7):
        response = await client.post(
            "/v1/messages", json=body(to=other if i % 2 else PHONE), headers=auth
        )
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/messages", params=params, headers=auth)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    filtered = (
        await client.get("/v1/messages", params={"to": "4915112345678"}, headers=auth)
    ).json()
    assert {m["to"] for m in filtered["items"]} == {other}
    assert len(filtered["items"]) == 3
    await client.post(f"/v1/messages/{ids[0]}/cancel", headers=auth)
    cancelled = (
        await client.get("/v1/messages", params={"status": "CANCELLED"}, headers=auth)
    ).json()
    assert [m["id"] for m in cancelled["items"]] == [ids[0]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"cursor": "garbage"}, {"status": "NOPE"}, {"to": "x"}]
)
async def test_list_rejects_bad_parameters(
    client: httpx.AsyncClient, org: Org, params: dict[str, Any]
) -> None:
    _, auth = org
    response = await client.get("/v1/messages", params=params, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_batch_queues_valid_items_and_reports_the_rest(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    items = [
        body(idempotency_key="a"),
        {"to": "nope", "template": TEMPLATE},
        body(to="+4915112345678"),
        body(idempotency_key="a"),
        body(idempotency_key="a", metadata={"changed": "yes"}),
        body(),
    ]
    response = await client.post("/v1/messages/batch", json={"messages": items}, headers=auth)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert results[0]["message"]["status"] == "QUEUED"
    assert results[1]["error"]["code"] == "validation_error"
    assert results[2]["error"]["code"] == "consent_required"
    assert results[3]["message"]["id"] == results[0]["message"]["id"]
    assert results[4]["error"]["code"] == "idempotency_conflict"
    assert results[5]["message"]["id"] != results[0]["message"]["id"]
    listing = (await client.get("/v1/messages", headers=auth)).json()
    assert len(listing["items"]) == 2


async def test_batch_limits(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    empty = await client.post("/v1/messages/batch", json={"messages": []}, headers=auth)
    assert empty.status_code == 422
    too_many = await client.post(
        "/v1/messages/batch", json={"messages": [body()] * 1001}, headers=auth
    )
    assert too_many.status_code == 422


async def test_batch_of_1000_in_one_call(client: httpx.AsyncClient, org: Org) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    items = [body(idempotency_key=f"k{i}") for i in range(1000)]
    response = await client.post("/v1/messages/batch", json={"messages": items}, headers=auth)
    assert response.status_code == 200
    assert all("message" in r for r in response.json()["results"])
