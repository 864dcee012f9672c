"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from redis_engines import Server, redis_args
from wa_outbound.config import Settings
from wa_outbound.db.engine import create_engine

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# WA_SECRET_KEYS of the tests' cloud settings (cloud refuses to start without a key); a fixed
# key, so a database written by one test app is read by the next.
TEST_SECRET_KEY = "dGVzdC1rZXktb2Ytd2Etb3V0Ym91bmQtdGVzdHMtMzI="


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "provider": "sandbox",
        "alert_enabled": False,
        "log_format": "text",
        "dispatch_enabled": False,
        # Tests that deliver callbacks turn the worker on (tests/callbacks/delivery_support.py).
        "callback_enabled": False,
        # Tests read a webhook's effects right after its 200 (on PostgreSQL the default answers
        # once the body is committed; tests/webhooks/test_group_commit.py tests that mode).
        "webhook_answer_after": "applied",
    }
    values.update(overrides)
    if values["provider"] == "cloud":
        values.setdefault("secret_keys", TEST_SECRET_KEY)
    return Settings(_env_file=None, **values)


async def create_org_with_key(
    client: httpx.AsyncClient, name: str = "Acme"
) -> tuple[str, dict[str, str]]:
    response = await client.post(
        "/v1/admin/orgs", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 201, response.text
    org_id = response.json()["id"]
    response = await client.post(
        f"/v1/admin/orgs/{org_id}/api-keys",
        json={"name": "test"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return org_id, {"Authorization": f"Bearer {response.json()['api_key']}"}


async def grant(client: httpx.AsyncClient, auth: dict[str, str], phone: str) -> None:
    response = await client.put(f"/v1/consents/{phone}", json={"status": "granted"}, headers=auth)
    assert response.status_code == 200, response.text


TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}


class _StatefulTransport(httpx.ASGITransport):
    """ASGITransport does not run the lifespan; hand the lifespan's state to each request."""

    def __init__(self, app: FastAPI, state: Any) -> None:
        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        super().__init__(app=with_state)


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, inside the app's lifespan (startup and shutdown run)."""
    async with app_and_state(app) as (client, _state):
        yield client


@asynccontextmanager
async def app_and_state(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """`app_client`, and the lifespan's state (its supervisor, metrics...). Each request gets a
    copy of the state as it is then, so a key added by the test reaches later requests."""
    async with app.router.lifespan_context(app) as lifespan_state:
        state: dict[str, Any] = dict(lifespan_state or {})
        transport = _StatefulTransport(app, state)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, state


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 30.0) -> None:
    """Wait until `check()` holds: for state another process or task changes (no event to
    await). Fails after `timeout_s`; never a performance assertion."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)


class PrivateRedis(Server):
    """A `redis-server` on a free port that keeps nothing on disk, started and stopped by pid
    (the process is redis_engines' `Server`, as each node of a cluster is); `pause` (SIGSTOP)
    leaves its connections open but answers nothing: a timeout."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        super().__init__(port, redis_args(port), workdir)
        self.url = f"redis://127.0.0.1:{port}/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def analysed_engine(database_url: str, *statements: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `database_url` after `statements` (in one transaction) and a VACUUM ANALYZE
    of the outbox: statistics and the visibility map as autovacuum leaves them, for the plans."""
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(sa.text("VACUUM (ANALYZE) outbound_message"))
        yield engine
    finally:
        await engine.dispose()
