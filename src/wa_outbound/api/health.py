"""Liveness and readiness.

Ready means the service can do its work: the database answers within DB_PING_TIMEOUT_S, its
schema is not older than the code, and no background loop has died. Redis is reported but does
not decide: when it is down the rate limiter decides on the database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.api import responses
from wa_outbound.api.deps import EngineDep
from wa_outbound.db.revision import SchemaWatch
from wa_outbound.workers import Supervisor

router = APIRouter(tags=["health"])
DB_PING_TIMEOUT_S = 2.0


@router.get(
    "/health/live",
    summary="The process is running",
    description="200 while the process runs, whatever its database: for a liveness probe.",
    responses=responses.LIVE,
)
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _database(engine: AsyncEngine) -> dict[str, Any]:
    try:
        async with asyncio.timeout(DB_PING_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to ping means not ready
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "dialect": engine.dialect.name}


def _limiter_health(request: Request) -> dict[str, Any]:
    """The limiter's own account (`{"backend", "redis": {"status", ...}}`); with no limiter in
    the lifespan state, the database decides and Redis is not used."""
    limiter = getattr(request.state, "limiter", None)
    if limiter is None:
        return {"backend": "database", "redis": {"status": "disabled"}}
    health: dict[str, Any] = limiter.health()
    return health


def _dispatcher(request: Request, workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "dispatcher" in workers:
        return workers["dispatcher"]
    if request.state.settings.dispatch_enabled:
        return {"status": "waiting", "reason": "the database schema is not usable yet"}
    return {"status": "disabled"}


def _callback_worker(request: Request, workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "callback-worker" in workers:
        return workers["callback-worker"]
    if request.state.settings.callback_enabled:
        return {"status": "waiting", "reason": "the database schema is not usable yet"}
    return {"status": "disabled"}


@router.get(
    "/health/ready",
    summary="The service can do its work: the database answers, its schema is not behind the "
    "code, and no background loop died",
    description="For a readiness probe or a load balancer. 200 when the database answers "
    "within 2 s, its schema is not older than the code, and no background loop has died; 503 "
    "otherwise. Redis is reported but does not decide: without it the rate limiter decides on "
    "the database.",
    responses=responses.READY,
)
async def ready(request: Request, engine: EngineDep) -> JSONResponse:
    supervisor: Supervisor = request.state.supervisor
    workers = supervisor.status()
    limiter = _limiter_health(request)
    schema: SchemaWatch = request.state.schema
    components: dict[str, Any] = {
        "database": await _database(engine),
        "schema": schema.status.describe(),
        "redis": limiter.get("redis", {"status": "disabled"}),
        "dispatcher": _dispatcher(request, workers),
        "callback_worker": _callback_worker(request, workers),
        "rate_limiter": {"backend": limiter.get("backend", "database")},
        "workers": workers,
    }
    ok = components["database"]["status"] == "up" and schema.status.usable and supervisor.healthy
    body = {"status": "ok" if ok else "unavailable", "components": components}
    return JSONResponse(body, status_code=200 if ok else 503)
