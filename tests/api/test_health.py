"""Liveness, readiness (database, Redis, dispatcher, limiter backend, background loops) and the
organisation's channel health."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpers import app_and_state, app_client, eventually, make_settings
from wa_outbound.app import create_app
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine


class Crashing:
    """A background worker whose loop dies at once."""

    async def run(self) -> None:
        raise RuntimeError("boom")

    async def run_once(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisDownLimiter:
    """What the rate limiter's `health()` says while Redis is unreachable."""

    def health(self) -> dict[str, Any]:
        return {"backend": "database", "redis": {"status": "down", "error": "ConnectionError"}}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nobody listens there any more


async def test_live_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_reports_every_component_when_all_is_well(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    components = body["components"]
    assert components["database"]["status"] == "up"
    head = migrate.head()
    assert components["schema"] == {
        "status": "current",
        "database_revision": head,
        "code_revision": head,
    }
    # No limiter in the lifespan state: the database decides and Redis is not used.
    assert components["redis"] == {"status": "disabled"}
    assert components["rate_limiter"] == {"backend": "database"}
    assert components["dispatcher"] == {"status": "disabled"}  # WA_DISPATCH_ENABLED=false
    assert components["workers"]["queue-gauges"] == {"status": "running"}


async def test_ready_shows_a_running_dispatcher(database_url: str) -> None:
    async with app_client(create_app(make_settings(database_url, dispatch_enabled=True))) as c:
        response = await c.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["components"]["dispatcher"] == {"status": "running"}


async def test_ready_is_503_when_the_database_is_unreachable() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/nowhere"
    async with app_client(create_app(make_settings(url))) as client:
        live = await client.get("/health/live")
        response = await client.get("/health/ready")
    assert live.status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["components"]["database"]["status"] == "down"


@pytest.mark.parametrize("worker", ["dispatcher", "alert-evaluator"])
async def test_ready_is_503_when_a_background_loop_crashed(settings: Settings, worker: str) -> None:
    async with app_and_state(create_app(settings)) as (client, state):
        supervisor = state["supervisor"]
        supervisor.start(worker, Crashing())
        await eventually(lambda: worker in supervisor.crashed)
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["database"]["status"] == "up"
    assert body["components"]["workers"][worker] == {
        "status": "crashed",
        "error": "RuntimeError: boom",
    }
    if worker == "dispatcher":
        assert body["components"]["dispatcher"]["status"] == "crashed"


async def test_ready_reports_the_limiter_backend_and_redis_but_redis_alone_does_not_decide(
    settings: Settings,
) -> None:
    async with app_and_state(create_app(settings)) as (client, state):
        state["limiter"] = RedisDownLimiter()
        response = await client.get("/health/ready")
    assert response.status_code == 200
    components = response.json()["components"]
    assert components["rate_limiter"] == {"backend": "database"}
    assert components["redis"] == {"status": "down", "error": "ConnectionError"}


async def test_a_schema_behind_the_code_is_not_ready_and_not_dispatched_until_migrated(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve --no-migrate` on a database one migration behind: readiness names both
    revisions, the dispatcher does not start; once a migration job upgrades the database,
    the replica starts dispatching and is ready, without a restart."""
    engine = create_engine(make_settings(postgres_url))
    try:
        await migrate.downgrade(engine, "-1")
        older = await migrate.current(engine)
        head = migrate.head()
        assert older is not None
        assert older != head
        settings = make_settings(postgres_url, dispatch_enabled=True)
        async with app_and_state(create_app(settings)) as (client, state):
            response = await client.get("/health/ready")
            assert response.status_code == 503
            components = response.json()["components"]
            assert components["schema"] == {
                "status": "behind",
                "database_revision": older,
                "code_revision": head,
            }
            assert components["database"]["status"] == "up"
            assert components["dispatcher"]["status"] == "waiting"
            assert "dispatcher" not in state["supervisor"].status()
            [line] = [r for r in caplog.records if "schema is behind" in r.getMessage()]
            assert line.levelno == logging.ERROR

            await migrate.upgrade(engine)

            async def ready() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready)
            body = (await client.get("/health/ready")).json()
            assert body["components"]["schema"]["status"] == "current"
            assert body["components"]["dispatcher"] == {"status": "running"}
    finally:
        await engine.dispose()


async def test_an_empty_database_is_behind_with_no_revision(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    async with app_client(create_app(settings)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["components"]["schema"] == {
        "status": "behind",
        "database_revision": None,
        "code_revision": migrate.head(),
    }


async def test_a_schema_newer_than_the_code_is_usable(sqlite_url: str) -> None:
    """A replica of the previous release, during a rolling deploy: the new release migrated."""
    engine = create_engine(make_settings(sqlite_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_next'"))
    finally:
        await engine.dispose()
    settings = make_settings(sqlite_url, dispatch_enabled=True)
    async with app_client(create_app(settings)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    components = response.json()["components"]
    assert components["schema"]["status"] == "ahead"
    assert components["schema"]["database_revision"] == "9999_next"
    assert components["dispatcher"] == {"status": "running"}
