"""Liveness, readiness (database, Redis, dispatcher, limiter backend, background loops) and the
organisation's channel health."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from helpers import app_and_state, app_client, eventually, make_settings
from wa_outbound.app import create_app
from wa_outbound.config import Settings


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
