"""Text neither database can store (a NUL character, an unpaired surrogate) is refused at the
door, on SQLite and PostgreSQL alike: 422 `validation_error` naming where it is, nothing stored;
and text that only looks like it passes untouched."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import ADMIN, grant
from wa_outbound.db.schema import api_key, consent, organization, outbound_message

PHONE = "+33612345678"
Org = tuple[str, dict[str, str]]
TEMPLATE = '"template": {"name": "order_update", "language": "en_US"}'

# (method, path, raw JSON body, where the 422 says the character is); `{org}` is the org's id.
REFUSED = [
    pytest.param(
        "POST",
        "/v1/messages",
        '{"to": "+33612345678", "template": {"name": "n0z9e", "language": "iz", "components": '
        '[{"type": "body"}, {"\\u0000W": [1], "type": "button"}]}, "metadata": {"a": "b"}}',
        ["body", "template", "components", 1, "\\u0000W"],
        id="issue-24: a NUL in a component's key",
    ),
    pytest.param(
        "POST",
        "/v1/messages",
        '{"to": "+33612345678", "template": {"name": "n", "language": "en", "components": '
        '[{"type": "body", "parameters": [{"type": "text", "text": "\\udc00"}]}]}}',
        ["body", "template", "components", 0, "parameters", 0, "text"],
        id="an unpaired surrogate in a parameter",
    ),
    pytest.param(
        "POST",
        "/v1/messages",
        f'{{"to": "+33612345678", {TEMPLATE}, "metadata": {{"order": "4\\u00002"}}}}',
        ["body", "metadata", "order"],
        id="a NUL in a metadata value",
    ),
    pytest.param(
        "POST",
        "/v1/messages",
        '{"to": "+33612345678", "text": {"body": "hi\\u0000"}}',
        ["body", "text", "body"],
        id="a NUL in a text body",
    ),
    pytest.param(
        "POST",
        "/v1/messages/batch",
        f'{{"messages": [{{"to": "+33612345678", {TEMPLATE}}}, '
        f'{{"to": "+33612345678", {TEMPLATE}, "idempotency_key": "k\\u0000"}}]}}',
        ["body", "messages", 1, "idempotency_key"],
        id="a NUL in one batch item refuses the batch",
    ),
    pytest.param(
        "PUT",
        f"/v1/consents/{PHONE}",
        '{"status": "granted", "source": "form\\u0000"}',
        ["body", "source"],
        id="a NUL in a consent's source",
    ),
    pytest.param(
        "POST",
        "/v1/admin/orgs",
        '{"name": "Acme\\u0000"}',
        ["body", "name"],
        id="a NUL in an organisation's name",
    ),
    pytest.param(
        "POST",
        "/v1/admin/orgs/{org}/api-keys",
        '{"name": "\\ud83d"}',
        ["body", "name"],
        id="an unpaired surrogate in a key's name",
    ),
    pytest.param(
        "POST",
        "/v1/dlq/replay",
        '{"error_code": "131026\\u0000"}',
        ["body", "error_code"],
        id="a NUL in a replay's error code",
    ),
    pytest.param(
        "PUT",
        "/v1/rate-limits/whatsapp/quota",
        '{"limit": 5, "\\u0000": 1}',
        ["body", "\\u0000"],
        id="a NUL in a key of the quota",
    ),
    pytest.param("GET", "/v1/admin/orgs/x%00", None, ["path", "org_id"], id="a NUL in a path"),
    pytest.param(
        "GET", "/v1/dlq?error_code=%00", None, ["query", "error_code"], id="a NUL in a query"
    ),
]
ADMIN_PATHS = ("/v1/admin/", "/v1/rate-limits/whatsapp/quota")
STORED_TABLES = (outbound_message, consent, organization, api_key)


async def rows(db_engine: AsyncEngine) -> dict[str, int]:
    async with db_engine.connect() as conn:
        return {
            table.name: int(
                (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
            )
            for table in STORED_TABLES
        }


@pytest.mark.parametrize(("method", "path", "raw", "loc"), REFUSED)
async def test_unstorable_text_is_refused_with_its_place_and_nothing_is_stored(
    client: httpx.AsyncClient,
    org: Org,
    db_engine: AsyncEngine,
    method: str,
    path: str,
    raw: str | None,
    loc: list[str | int],
) -> None:
    org_id, auth = org
    await grant(client, auth, PHONE)
    before = await rows(db_engine)
    response = await client.request(
        method,
        path.format(org=org_id),
        content=raw,
        headers={
            **(ADMIN if path.startswith(ADMIN_PATHS) else auth),
            "Content-Type": "application/json",
            "X-Org-Id": org_id,
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["loc"] == [str(part) for part in loc]
    where = ".".join(str(part) for part in (loc[1:] if loc[0] == "body" else loc))
    assert error["message"].startswith(f"{where}: ")
    assert await rows(db_engine) == before


async def test_text_that_only_looks_unstorable_is_stored_as_sent(
    client: httpx.AsyncClient, org: Org
) -> None:
    _, auth = org
    await grant(client, auth, PHONE)
    # An escaped backslash followed by "u0000", and an emoji written as a surrogate pair.
    raw = (
        f'{{"to": "{PHONE}", {TEMPLATE}, "metadata": {{"a": "\\\\u0000", "b": "\\ud83d\\ude00"}}}}'
    )
    response = await client.post(
        "/v1/messages", content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    stored = (await client.get(f"/v1/messages/{message_id}", headers=auth)).json()
    assert stored["metadata"] == {"a": "\\u0000", "b": "\U0001f600"}
