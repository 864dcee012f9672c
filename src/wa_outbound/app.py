"""The composition root: `create_app(settings)` wires everything; importing does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from wa_outbound.api import admin, consents, errors, health, messages, ratelimits
from wa_outbound.api.deps import State
from wa_outbound.config import Settings
from wa_outbound.db.engine import create_engine
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import create_rate_limiter

DESCRIPTION = """
Queue WhatsApp template and session messages; they are sent through Meta's Cloud API by the
service's dispatcher, and their statuses arrive through Meta's webhooks.

Authenticate with `Authorization: Bearer <api key>` (admin calls: the admin token). Every error
answers `{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        engine = create_engine(settings)
        metrics = Metrics()
        # Rate limiter: after the engine and metrics it uses, closed before the engine.
        limiter = create_rate_limiter(settings, engine, metrics)
        try:
            yield {"settings": settings, "engine": engine, "metrics": metrics, "limiter": limiter}
        finally:
            await limiter.close()
            await engine.dispose()

    app = FastAPI(
        title="wa-outbound",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (admin, messages, consents, health, ratelimits):
        app.include_router(module.router)
    return app
