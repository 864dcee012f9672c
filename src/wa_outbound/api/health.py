"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.api.deps import EngineDep
from wa_outbound.workers import Supervisor

router = APIRouter(tags=["health"])
DB_PING_TIMEOUT_S = 2.0


@router.get("/health/live", summary="The process is running")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _database(engine: AsyncEngine) -> dict[str, Any]:
    try:
        async with asyncio.timeout(DB_PING_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to ping means not ready
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "dialect": engine.dialect.name}


@router.get(
    "/health/ready",
    summary="The service can do its work: the database answers and no background loop died",
    responses={503: {"description": "Not ready; the body says which component is down"}},
)
async def ready(request: Request, engine: EngineDep) -> JSONResponse:
    supervisor: Supervisor = request.state.supervisor
    workers = supervisor.status()
    components: dict[str, Any] = {"database": await _database(engine)}
    components["dispatcher"] = workers.get("dispatcher", {"status": "disabled"})
    components["workers"] = workers
    ok = components["database"]["status"] == "up" and supervisor.healthy
    body = {"status": "ok" if ok else "unavailable", "components": components}
    return JSONResponse(body, status_code=200 if ok else 503)
