"""The single-message fast path on PostgreSQL with the template gate: the common case (a template
the registry has APPROVED, or a WABA never read) is still queued in one statement; everything
the gate may refuse is left to the general path (nothing inserted)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatch_helpers import new_org
from factories import insert_sender
from helpers import make_settings
from template_helpers import change, item, opt_out, synced
from wa_outbound.db.engine import create_engine
from wa_outbound.outbox import enqueue, one

W = "waba-fast"
USER = "+33612345678"


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, list[str]]]:
    """An engine whose every statement sent to PostgreSQL is recorded."""
    statements: list[str] = []
    engine = create_engine(make_settings(postgres_url))

    def log(query: Any) -> None:
        statements.append(query.query)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def watch(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(log)

    yield engine, statements
    await engine.dispose()


def new(name: str) -> enqueue.NewMessage:
    return enqueue.NewMessage(
        to=USER,
        kind="template",
        payload={"name": name, "language": "en_US"},
        metadata={},
        send_after=None,
        idempotency_key=None,
        request_hash=uuid.uuid4().hex,
    )


async def fast(engine: AsyncEngine, org_id: str, name: str) -> bool:
    outcome = await one.enqueue_one(
        engine, org_id=org_id, item=new(name), max_attempts=5, actor="t", shared_sender=False
    )
    return outcome is not None


async def test_the_common_case_stays_one_statement(
    engine: tuple[AsyncEngine, list[str]],
) -> None:
    db, statements = engine
    org_id = await new_org(db, USER)
    async with db.begin() as conn:
        await insert_sender(conn, org_id, phone_number_id="9000001", waba_id=W)
    assert await fast(db, org_id, "anything"), "a WABA never read is advisory"
    await synced(
        db, W, item("order_update"), item("promo", category="MARKETING"), item("held", "PAUSED")
    )
    assert await fast(db, org_id, "order_update")  # once to prepare the statement
    statements.clear()
    assert await fast(db, org_id, "order_update")
    assert len(statements) == 1, statements
    assert await fast(db, org_id, "promo")

    # What the gate may refuse goes to the general path.
    assert not await fast(db, org_id, "held")
    assert not await fast(db, org_id, "unknown_in_a_synced_waba")
    await opt_out(db, org_id, USER)
    assert not await fast(db, org_id, "promo")
    assert await fast(db, org_id, "order_update"), "utility to an opted-out recipient"
    await change(db, W, "order_update", status="DISABLED")
    assert not await fast(db, org_id, "order_update")
