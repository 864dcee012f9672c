"""The loop shared by the periodic workers: it survives failures and logs an outage once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wa_outbound.workers import repeat


async def test_a_run_of_failures_logs_one_traceback_a_line_per_retry_and_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    until = asyncio.Event()
    outcomes: list[Exception | None] = [OSError("database down")] * 3 + [None, None]
    calls = 0

    async def step() -> None:
        nonlocal calls
        outcome = outcomes[calls]
        calls += 1
        if calls == len(outcomes):
            until.set()
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.INFO, logger="wa_outbound.workers"):
        await repeat(step, every_s=0, until=until, what="receipt sweep")

    assert calls == 5
    logged = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert logged == [
        ("ERROR", "receipt sweep failed", True),
        ("WARNING", "receipt sweep failed again", False),
        ("WARNING", "receipt sweep failed again", False),
        ("WARNING", "receipt sweep works again", False),
    ]
    assert [getattr(r, "failures", None) for r in caplog.records] == [None, 2, 3, 3]
