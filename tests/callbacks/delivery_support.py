"""The delivery tests' worker: real settings (insecure URLs allowed, a compressed schedule),
driven in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import KEYRING
from helpers import TEST_SECRET_KEY, make_settings
from wa_outbound.callbacks.worker import CallbackWorker
from wa_outbound.config import Settings
from wa_outbound.metrics import Metrics

FAST_SCHEDULE = "0.2,0.2,0.2,0.2,0.2,0.2,0.2"


def callback_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_keys": TEST_SECRET_KEY,
        "callback_allow_insecure": True,
        "callback_retry_schedule": FAST_SCHEDULE,
        "callback_poll_seconds": 0.05,
        "callback_timeout_seconds": 2.0,
        "shutdown_grace_seconds": 2.0,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


def new_worker(engine: AsyncEngine, settings: Settings) -> CallbackWorker:
    return CallbackWorker(
        settings=settings, engine=engine, metrics=Metrics(), decrypt=KEYRING.decrypt
    )


@asynccontextmanager
async def running(worker: CallbackWorker) -> AsyncIterator[CallbackWorker]:
    """The worker's loop as a task until the block ends; a crash of the loop fails the test."""
    task = asyncio.create_task(worker.run(), name="callback-worker-under-test")
    try:
        yield worker
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 30)
