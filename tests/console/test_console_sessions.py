"""Console sessions and forms over HTTP (the app in process, on SQLite and PostgreSQL): the
CSRF token on every form, the session cookie's attributes, the security headers, the idle and
absolute limits, the admin's sign-in, and the actor each action is recorded with."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from console_helpers import csrf_of, dead_letter, sign_in
from factories import engine_for, message_row
from helpers import ADMIN_TOKEN, app_client, create_org_with_key, make_settings
from wa_outbound.app import create_app
from wa_outbound.console import sessions
from wa_outbound.db.console_schema import console_session
from wa_outbound.db.schema import audit_event, message_event
from wa_outbound.db.types import utcnow

Org = tuple[str, str]  # (org id, API key)


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, console_allow_insecure=True)
    async with app_client(create_app(settings)) as client:
        yield client


@pytest.fixture
async def org(console: httpx.AsyncClient) -> Org:
    org_id, auth = await create_org_with_key(console)
    return org_id, auth["Authorization"].removeprefix("Bearer ")


async def _events(database_url: str, message_id: Any) -> list[dict[str, Any]]:
    async with engine_for(database_url) as engine, engine.connect() as conn:
        rows = await conn.execute(
            sa.select(message_event).where(message_event.c.message_id == message_id)
        )
        return [dict(r._mapping) for r in rows]


async def test_a_form_without_its_csrf_token_is_refused(
    console: httpx.AsyncClient, org: Org, database_url: str
) -> None:
    message_id = await dead_letter(database_url, org[0])
    assert (await sign_in(console, org[1])).status_code == 303
    replay = {"action": "replay", "error_code": "132001"}

    missing = await console.post("/console/dlq/apply", data=replay)
    wrong = await console.post("/console/dlq/apply", data=replay | {"csrf_token": "forged"})
    sign_out = await console.post("/console/sign-out", data={})
    still_dead = (await console.get("/console/dlq")).text
    token = csrf_of(still_dead)
    done = await console.post("/console/dlq/apply", data=replay | {"csrf_token": token})

    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert "CSRF token" in missing.text
    assert sign_out.status_code == 403
    assert str(message_id)[:8] in still_dead  # nothing was replayed, and still signed in
    assert done.status_code == 303
    assert done.headers["location"] == "/console/dlq?replayed=1"
    [replayed] = [e for e in await _events(database_url, message_id) if e["type"] == "replayed"]
    assert replayed["actor"] == f"console:{org[1][:12]}"


async def test_signing_in_needs_the_forms_own_token(console: httpx.AsyncClient, org: Org) -> None:
    await console.get("/console/sign-in")  # sets the sign-in cookie
    refused = await console.post("/console/sign-in", data={"key": org[1]})

    assert refused.status_code == 403
    assert (await console.get("/console/")).status_code == 303


async def test_pages_answer_the_security_headers_and_load_only_their_own_assets(
    console: httpx.AsyncClient, org: Org
) -> None:
    signin_page = await console.get("/console/sign-in")
    await sign_in(console, org[1])
    for response in (signin_page, *[await console.get(p) for p in ("/console/", "/console/dlq")]):
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        # No inline script (the policy allows none), and every asset on the service.
        assert re.findall(r"<script(?![^>]*\ssrc=)", response.text) == []
        for url in re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', response.text):
            assert url.startswith("/console/static/"), url
            assert not urlsplit(url).netloc, url
            assert (await console.get(url)).status_code == 200, url


async def test_over_https_the_cookie_is_host_prefixed_secure_httponly_and_strict(
    database_url: str,
) -> None:
    async with app_client(create_app(make_settings(database_url))) as client:
        client.base_url = httpx.URL("https://testserver")
        _org_id, auth = await create_org_with_key(client)
        response = await sign_in(client, auth["Authorization"].removeprefix("Bearer "))
        overview = await client.get("/console/")

    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("__Host-wa_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "samesite=strict" in cookie.lower()
    assert "max-age=28800" in cookie.lower()
    assert overview.status_code == 200


async def test_over_plain_http_no_one_signs_in_unless_the_setting_allows_it(
    database_url: str,
) -> None:
    async with app_client(create_app(make_settings(database_url))) as client:
        _org_id, auth = await create_org_with_key(client)
        page = await client.get("/console/sign-in")
        refused = await client.post(
            "/console/sign-in", data={"key": auth["Authorization"].removeprefix("Bearer ")}
        )

    assert page.status_code == 403
    assert "WA_CONSOLE_ALLOW_INSECURE" in page.text
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers


async def test_an_idle_or_old_session_ends(
    console: httpx.AsyncClient, org: Org, database_url: str
) -> None:
    async def age(**columns: Any) -> httpx.Response:
        async with engine_for(database_url) as engine, engine.begin() as conn:
            await conn.execute(console_session.update().values(**columns))
        return await console.get("/console/")

    await sign_in(console, org[1])
    assert (await age(last_seen_at=utcnow() - timedelta(minutes=29))).status_code == 200
    idle = await age(last_seen_at=utcnow() - timedelta(minutes=31))
    await sign_in(console, org[1])
    old = await age(expires_at=utcnow() - timedelta(seconds=1))

    assert idle.status_code == 303
    assert idle.headers["location"] == "/console/sign-in"
    assert old.status_code == 303
    async with engine_for(database_url) as engine, engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(console_session)) == 0


async def test_use_keeps_a_session_alive_for_eight_hours_at_most(db_engine: Any) -> None:
    start = utcnow()
    async with db_engine.begin() as conn:
        token = await sessions.create(
            conn, org_id=None, is_admin=True, key_hash="h", actor="console:admin", now=start
        )
        alive = [
            await sessions.load(conn, token, now=start + timedelta(minutes=25 * i))
            for i in range(1, 19)  # every 25 minutes: never idle for 30
        ]
        late = await sessions.load(conn, token, now=start + sessions.MAX_AGE)

    assert all(found is not None for found in alive)
    assert late is None


async def test_the_admin_picks_an_organisation_and_acts_as_console_admin(
    console: httpx.AsyncClient, org: Org, database_url: str
) -> None:
    message_id = await dead_letter(database_url, org[0])
    signed_in = await sign_in(console, ADMIN_TOKEN)
    before_picking = await console.get("/console/dlq")
    orgs_page = await console.get("/console/orgs")
    picked = await console.post(
        "/console/orgs", data={"csrf_token": csrf_of(orgs_page.text), "org_id": org[0]}
    )
    confirm = await console.post(
        "/console/dlq/confirm",
        data={"csrf_token": csrf_of(orgs_page.text), "action": f"discard:{message_id}"},
    )
    discarded = await console.post(
        "/console/dlq/apply",
        data={"csrf_token": csrf_of(confirm.text), "action": "discard", "ids": str(message_id)},
    )

    assert signed_in.headers["location"] == "/console/orgs"
    assert before_picking.headers["location"] == "/console/orgs"
    assert org[0] in orgs_page.text
    assert picked.status_code == 303
    assert "Discard 1 message?" in confirm.text
    assert discarded.headers["location"] == "/console/dlq?discarded=1"
    [event] = [e for e in await _events(database_url, message_id) if e["type"] == "dlq_discarded"]
    assert event["actor"] == "console:admin"
    async with engine_for(database_url) as engine, engine.connect() as conn:
        row = await message_row(conn, message_id)
        audit = await conn.execute(
            sa.select(audit_event.c.action, audit_event.c.org_id).where(
                audit_event.c.actor == "console:admin"
            )
        )
        actions = {(a.action, a.org_id) for a in audit}
    assert row["dead_lettered"] is False
    assert {("console.signed_in", None), ("console.org_chosen", org[0])} <= actions


async def test_an_org_session_cannot_pick_another_organisation(
    console: httpx.AsyncClient, org: Org
) -> None:
    other_id, _auth = await create_org_with_key(console, "Other")
    await sign_in(console, org[1])
    page = await console.get("/console/")
    pick = await console.post(
        "/console/orgs", data={"csrf_token": csrf_of(page.text), "org_id": other_id}
    )

    assert (await console.get("/console/orgs")).status_code == 404
    assert pick.status_code == 404
    assert org[0] in (await console.get("/console/")).text


async def test_signing_out_ends_the_session(
    console: httpx.AsyncClient, org: Org, database_url: str
) -> None:
    await sign_in(console, org[1])
    page = await console.get("/console/")
    out = await console.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})

    assert out.headers["location"] == "/console/sign-in"
    assert (await console.get("/console/")).status_code == 303
    async with engine_for(database_url) as engine, engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(console_session)) == 0


async def test_revoking_the_key_ends_its_session_at_the_next_request(
    console: httpx.AsyncClient, database_url: str
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await console.post("/v1/admin/orgs", json={"name": "Acme"}, headers=admin)
    org_id = created.json()["id"]
    key = await console.post(f"/v1/admin/orgs/{org_id}/api-keys", json={}, headers=admin)
    await sign_in(console, key.json()["api_key"])
    assert (await console.get("/console/")).status_code == 200

    revoked = await console.delete(
        f"/v1/admin/orgs/{org_id}/api-keys/{key.json()['id']}", headers=admin
    )
    after = await console.get("/console/messages")

    assert revoked.status_code == 204
    assert after.status_code == 303
    assert after.headers["location"] == "/console/sign-in"
    async with engine_for(database_url) as engine, engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(console_session)) == 0
