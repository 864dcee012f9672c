"""Request body size limits: 413 with the contract's error body, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from helpers import ADMIN, TEMPLATE, app_client, create_org_with_key, grant, make_settings
from wa_outbound.api.limits import BATCH_BODY_BYTES, SINGLE_BODY_BYTES, body_limit
from wa_outbound.app import create_app

PHONE = "+33612345678"
Org = tuple[str, dict[str, str]]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The limits are the same on every database: SQLite is enough."""
    return sqlite_url


def padded(size: int) -> bytes:
    """A message body of exactly `size` bytes (JSON whitespace pads it)."""
    base = orjson.dumps({"to": PHONE, "template": TEMPLATE})
    return base[:-1] + b" " * (size - len(base)) + b"}"


def test_a_batch_may_be_larger_than_a_single_message() -> None:
    assert body_limit("/v1/messages") == SINGLE_BODY_BYTES
    assert body_limit("/v1/messages/batch") == BATCH_BODY_BYTES > SINGLE_BODY_BYTES


async def test_a_message_body_at_the_limit_is_accepted(client: httpx.AsyncClient, org: Org) -> None:
    _org_id, auth = org
    await grant(client, auth, PHONE)
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post("/v1/messages", content=padded(SINGLE_BODY_BYTES), headers=headers)
    assert response.status_code == 202, response.text


async def test_a_declared_body_over_the_limit_is_refused_with_the_error_body(
    client: httpx.AsyncClient, org: Org
) -> None:
    _org_id, auth = org
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post(
        "/v1/messages", content=padded(SINGLE_BODY_BYTES + 1), headers=headers
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than {SINGLE_BODY_BYTES} bytes.",
            "details": {"limit_bytes": SINGLE_BODY_BYTES},
        }
    }


async def test_a_streamed_body_over_the_limit_is_refused_without_trusting_a_length(
    client: httpx.AsyncClient, org: Org
) -> None:
    _org_id, auth = org
    raw = padded(SINGLE_BODY_BYTES * 3)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 16 * 1024):
            yield raw[start : start + 16 * 1024]

    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post("/v1/messages", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_batch_larger_than_a_single_message_limit_is_accepted(
    client: httpx.AsyncClient, org: Org
) -> None:
    _org_id, auth = org
    await grant(client, auth, PHONE)
    messages = [{"to": PHONE, "template": TEMPLATE, "metadata": {"n": "x" * 400}}] * 200
    raw = orjson.dumps({"messages": messages})
    assert SINGLE_BODY_BYTES < len(raw) < BATCH_BODY_BYTES
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post("/v1/messages/batch", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert all("message" in item for item in response.json()["results"])


async def test_a_query_parameter_given_twice_is_refused(
    client: httpx.AsyncClient, org: Org
) -> None:
    _org_id, auth = org
    response = await client.get("/v1/messages?cursor=a&cursor=", headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "cursor" in response.json()["error"]["message"]


async def test_a_nul_character_that_postgres_cannot_store_is_a_validation_error(
    postgres_url: str,
) -> None:
    async with app_client(create_app(make_settings(postgres_url))) as pg_client:
        response = await pg_client.post(
            "/v1/admin/orgs", json={"name": "Acme\u0000"}, headers=ADMIN
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        _org_id, auth = await create_org_with_key(pg_client)
        dlq = await pg_client.get("/v1/dlq?error_code=%00", headers=auth)
        assert dlq.status_code == 422, dlq.text
