"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from wa_outbound.api.deps import EngineDep

router = APIRouter(tags=["health"])
DB_PING_TIMEOUT_S = 2.0


@router.get("/health/live", summary="The process is running")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="The service can do its work (the database answers)",
    responses={503: {"description": "Not ready; the body says which component is down"}},
)
async def ready(engine: EngineDep) -> JSONResponse:
    database: dict[str, Any]
    try:
        async with asyncio.timeout(DB_PING_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        database = {"status": "up", "dialect": engine.dialect.name}
    except Exception as exc:  # any failure to ping means not ready
        database = {"status": "down", "error": type(exc).__name__}
    ok = database["status"] == "up"
    body = {"status": "ok" if ok else "unavailable", "components": {"database": database}}
    return JSONResponse(body, status_code=200 if ok else 503)
