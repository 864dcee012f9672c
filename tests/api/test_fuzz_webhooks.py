"""Webhook fuzzing: hypothesis-made bodies, all validly signed, posted to the service running as
its own process on PostgreSQL.

Whatever arrives, the answer is 200, 400 or 413, never a 5xx; an entry that cannot be read as a
status (a wrong type where the envelope needs an object, a list or a string) never changes a
message and never leaves a pending status behind; any text in a status, NUL included, lets it
apply; and at the end every stored body was processed and the service logged no error.

CI posts 60 bodies per test, derandomized; `make fuzz` posts `WA_FUZZ_EXAMPLES` (1,000) and
writes the figures to `WA_FUZZ_REPORT`.
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import engine_for, insert_message, insert_org
from fuzz_service import APP_SECRET, Service, record, running_service
from wa_outbound.api.limits import WEBHOOK_BODY_BYTES
from wa_outbound.db.schema import outbound_message, pending_status, webhook_event

URL = "/webhooks/whatsapp"
ALLOWED = {200, 400, 413}
BODIES_PER_TEST = int(os.environ.get("WA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=BODIES_PER_TEST,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Bodies of up to 3 MB: a tenth as many.
HUGE = settings(FUZZ, max_examples=max(8, BODIES_PER_TEST // 10))
# Bodies posted.
POSTED: Counter[str] = Counter()
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
# Any text, often with a NUL in it (which PostgreSQL's text and jsonb refuse).
texts = st.text(max_size=20) | st.text(max_size=20).map(lambda t: f"{t[:3]}\x00{t[3:]}")
RANKED = {"sent": "SENT", "delivered": "DELIVERED", "read": "READ", "failed": "FAILED"}


@pytest.fixture(scope="module")
def service(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = time.monotonic()
    with running_service(pg_template, tmp_path_factory.mktemp("fuzz-webhooks")) as service:
        yield service
    record(
        "webhooks",
        bodies_per_test=BODIES_PER_TEST,
        bodies=POSTED["bodies"],
        seconds=round(time.monotonic() - started, 1),
    )


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as c:
        yield c


@pytest.fixture
async def engine(service: Service) -> AsyncIterator[AsyncEngine]:
    async with engine_for(service.database_url) as engine:
        yield engine


@pytest.fixture
async def wamid(engine: AsyncEngine) -> str:
    """The wamid of a message Meta accepted: every fuzzed status is about it."""
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        await insert_message(conn, org_id=await insert_org(conn), wamid=wamid)
    return wamid


async def post(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    POSTED["bodies"] += 1
    signature = meta.sign(raw, APP_SECRET)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    return await client.post(URL, content=raw, headers=headers)


def replaced(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return out


async def stored(engine: AsyncEngine, wamid: str) -> tuple[str, int]:
    """The message's status, and how many pending statuses exist for its wamid."""
    async with engine.connect() as conn:
        status = await conn.scalar(
            sa.select(outbound_message.c.status).where(
                outbound_message.c.provider_message_id == wamid
            )
        )
        pending = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(pending_status)
            .where(pending_status.c.provider_message_id == wamid)
        )
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


@HUGE
@given(
    item=st.sampled_from([0, None, "x", [], {}, {"id": 1, "status": []}]),
    count=st.integers(min_value=10_000, max_value=400_000),
    where=st.sampled_from(["entry", "changes", "statuses"]),
)
async def test_huge_arrays_are_answered_without_a_server_error(
    client: httpx.AsyncClient, engine: AsyncEngine, wamid: str, item: Any, count: int, where: str
) -> None:
    items = [item] * count
    if where == "entry":
        body: dict[str, Any] = {"object": "whatsapp_business_account", "entry": items}
    elif where == "changes":
        body = {"entry": [{"id": meta.WABA_ID, "changes": items}]}
    else:
        body = meta.envelope(statuses=items)
    raw = orjson.dumps(body)
    try:
        response = await post(client, raw)
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        # Over the limit, the service answers 413 without reading the rest and closes the
        # connection; the client, still sending, may meet the reset before it reads the 413.
        assert len(raw) > WEBHOOK_BODY_BYTES
    else:
        assert response.status_code in ALLOWED, response.text
    assert await stored(engine, wamid) == ("ACCEPTED", 0)


@FUZZ
@given(path=st.sampled_from(sorted(NEEDS, key=len)), wrong=valid_json_values, status=st.data())
async def test_a_wrong_type_in_the_envelope_stores_no_status(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
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
    assert await stored(engine, wamid) == ("ACCEPTED", 0)


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


@FUZZ
@given(
    value=st.sampled_from(sorted(RANKED)),
    title=texts,
    message=texts,
    details=texts,
    recipient=texts,
    extra=st.dictionaries(texts, texts | st.lists(texts, max_size=3), max_size=3),
)
async def test_any_text_in_a_status_lets_it_apply(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    value: str,
    title: str,
    message: str,
    details: str,
    recipient: str,
    extra: dict[str, Any],
) -> None:
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        await insert_message(conn, org_id=await insert_org(conn), wamid=wamid)
    error = meta.error(131026, title, message, details)
    status = meta.status(wamid, value, recipient_id=recipient, errors=[error])
    status["conversation"] = {**status.get("conversation", {}), **extra}
    response = await post(client, orjson.dumps(meta.envelope(statuses=[{**extra, **status}])))
    assert response.status_code == 200, response.text
    assert await stored(engine, wamid) == (RANKED[value], 0)


async def test_every_body_was_processed_and_the_service_logged_no_error(
    service: Service, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        unprocessed = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(webhook_event)
            .where(webhook_event.c.processed_at.is_(None))
        )
    assert unprocessed == 0
    assert service.errors() == []
