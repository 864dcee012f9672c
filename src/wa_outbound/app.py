"""The composition root: `create_app(settings)` wires everything; importing does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from wa_outbound.api import admin, consents, errors, health, messages, webhooks
from wa_outbound.api.deps import State
from wa_outbound.config import Settings
from wa_outbound.db.engine import create_engine
from wa_outbound.metrics import Metrics
from wa_outbound.receipt_sweep import ReceiptSweep
from wa_outbound.workers import Supervisor

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
        state: State = {"settings": settings, "engine": engine}
        try:
            # --- webhooks (issue 4): metrics and supervisor shared with the other workers ---
            metrics = state.setdefault("metrics", Metrics())
            supervisor = state.setdefault("supervisor", Supervisor())
            sweep = ReceiptSweep(
                engine,
                metrics=metrics,
                pending_max_age_s=settings.pending_status_max_age_seconds,
            )
            supervisor.start("receipt-sweep", sweep)
            # --- end webhooks ---
            yield state
        finally:
            if "supervisor" in state:
                await state["supervisor"].stop_all()
            await engine.dispose()

    app = FastAPI(
        title="wa-outbound",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (admin, messages, consents, health, webhooks):
        app.include_router(module.router)
    return app
