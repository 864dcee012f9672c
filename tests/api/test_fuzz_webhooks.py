"""Webhook fuzzing: hypothesis-made bodies, all validly signed, on PostgreSQL.

Whatever arrives, the answer is 200, 400 or 413, never a 5xx; and an entry that cannot be read
as a status (a wrong type where the envelope needs an object, a list or a string) never changes
a message and never leaves a pending status behind.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import insert_message, insert_org
from helpers import app_client, make_settings
from wa_outbound.app import create_app
from wa_outbound.db.schema import outbound_message, pending_status

SECRET = "fuzz-app-secret"
URL = "/webhooks/whatsapp"
ALLOWED = {200, 400, 413}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
# What valid JSON can hold, in any field of a body that must still be read (200).
valid_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
valid_json_values = st.recursive(
    valid_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
# Every envelope key a status depends on, with what that key needs to be read at all.
NEEDS = {
    ("entry",): list,
    ("entry", 0): dict,
    ("entry", 0, "changes"): list,
    ("entry", 0, "changes", 0): dict,
    ("entry", 0, "changes", 0, "value"): dict,
    ("entry", 0, "changes", 0, "value", "statuses"): list,
    ("entry", 0, "changes", 0, "value", "statuses", 0): dict,
    ("entry", 0, "changes", 0, "value", "statuses", 0, "id"): str,
    ("entry", 0, "changes", 0, "value", "statuses", 0, "status"): str,
}
# Keys whose wrong types are tolerated: the status still applies, without them.
TOLERATED = ("timestamp", "recipient_id", "errors", "conversation", "pricing")


@pytest.fixture
async def client(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(postgres_url, app_secret=SECRET))
    async with app_client(app) as c:
        yield c


@pytest.fixture
async def wamid(pg_engine: AsyncEngine) -> str:
    """The wamid of a message Meta accepted: every fuzzed status is about it."""
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with pg_engine.begin() as conn:
        await insert_message(conn, org_id=await insert_org(conn), wamid=wamid)
    return wamid


async def post(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta.sign(raw, SECRET)}
    return await client.post(URL, content=raw, headers=headers)


def replaced(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return out


async def stored(pg_engine: AsyncEngine, wamid: str) -> tuple[str, int]:
    """The message's status, and how many pending statuses exist."""
    async with pg_engine.connect() as conn:
        status = await conn.scalar(
            sa.select(outbound_message.c.status).where(
                outbound_message.c.provider_message_id == wamid
            )
        )
        pending = await conn.scalar(sa.select(sa.func.count()).select_from(pending_status))
    return str(status), int(pending or 0)


@FUZZ
@given(body=json_values)
async def test_random_json_is_answered_200_or_400_and_never_with_a_server_error(
    client: httpx.AsyncClient, body: Any
) -> None:
    # The standard library writes what orjson would refuse: NaN, integers beyond 64 bits.
    response = await post(client, json.dumps(body).encode())
    assert response.status_code in ALLOWED, response.text


@FUZZ
@given(depth=st.integers(min_value=1, max_value=100_000), opener=st.sampled_from("[{"))
async def test_deep_nesting_is_answered_without_a_server_error(
    client: httpx.AsyncClient, depth: int, opener: str
) -> None:
    inner = '{"a":' * depth + "1" + "}" * depth if opener == "{" else "[" * depth + "]" * depth
    raw = ('{"entry":' + inner + "}").encode()
    response = await post(client, raw)
    assert response.status_code in ALLOWED, response.text


@settings(FUZZ, max_examples=8)
@given(
    item=st.sampled_from([0, None, "x", [], {}, {"id": 1, "status": []}]),
    count=st.integers(min_value=10_000, max_value=400_000),
    where=st.sampled_from(["entry", "changes", "statuses"]),
)
async def test_huge_arrays_are_answered_without_a_server_error(
    client: httpx.AsyncClient, pg_engine: AsyncEngine, wamid: str, item: Any, count: int, where: str
) -> None:
    items = [item] * count
    if where == "entry":
        body: dict[str, Any] = {"object": "whatsapp_business_account", "entry": items}
    elif where == "changes":
        body = {"entry": [{"id": meta.WABA_ID, "changes": items}]}
    else:
        body = meta.envelope(statuses=items)
    response = await post(client, orjson.dumps(body))
    assert response.status_code in ALLOWED, response.text
    assert await stored(pg_engine, wamid) == ("ACCEPTED", 0)


@FUZZ
@given(path=st.sampled_from(sorted(NEEDS, key=len)), wrong=valid_json_values, status=st.data())
async def test_a_wrong_type_in_the_envelope_stores_no_status(
    client: httpx.AsyncClient,
    pg_engine: AsyncEngine,
    wamid: str,
    path: tuple[str | int, ...],
    wrong: Any,
    status: st.DataObject,
) -> None:
    if isinstance(wrong, NEEDS[path]):
        wrong = 0  # hypothesis drew the right type: make it wrong
    value = status.draw(st.sampled_from(["sent", "delivered", "read", "failed"]))
    body = replaced(meta.envelope(statuses=[meta.status(wamid, value)]), path, wrong)
    response = await post(client, orjson.dumps(body))
    assert response.status_code == 200, response.text
    assert await stored(pg_engine, wamid) == ("ACCEPTED", 0)


@FUZZ
@given(key=st.sampled_from(TOLERATED), wrong=valid_json_values)
async def test_a_wrong_type_in_an_optional_status_field_is_answered_200(
    client: httpx.AsyncClient, wamid: str, key: str, wrong: Any
) -> None:
    status = {**meta.status(wamid, "sent"), key: wrong}
    response = await post(client, orjson.dumps(meta.envelope(statuses=[status])))
    assert response.status_code == 200, response.text


@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
async def test_bytes_that_are_not_json_are_a_bad_request(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await post(client, body)
    assert response.status_code in ALLOWED, response.text
