"""Management webhooks, routed by the entry's WABA id, on SQLite and PostgreSQL: account
restrictions and bans pause every sender of the WABA, a reinstatement or the restriction's end
resumes them; messaging limits and throughput upgrades; unknown WABAs; malformed values."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from factories import insert_message, insert_sender
from wa_outbound.db.schema import audit_event, outbound_message, sender, waba
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.webhooks import intake
from wa_outbound.webhooks.intake import Processed
from wa_outbound.webhooks.management import tier_of
from wa_outbound.webhooks.sweep import ReceiptSweep

W, OTHER = "waba-m-1", "waba-m-2"


async def process(engine: AsyncEngine, body: dict[str, Any]) -> Processed:
    async with engine.begin() as conn:
        return await intake.process(conn, body, now=utcnow())


async def three_senders(engine: AsyncEngine, org_id: str) -> list[uuid.UUID]:
    """Two senders of W, one of OTHER."""
    async with engine.begin() as conn:
        return [
            await insert_sender(conn, org_id, phone_number_id=number, waba_id=waba_id)
            for number, waba_id in (("7000001", W), ("7000002", W), ("7000003", OTHER))
        ]


async def reasons(engine: AsyncEngine, sender_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sender.c.paused_reasons).where(sender.c.id == sender_id)
        )
    return list(found or [])


async def waba_row(engine: AsyncEngine, waba_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(waba).where(waba.c.waba_id == waba_id))).one()


async def test_a_messaging_restriction_pauses_every_sender_of_the_waba_until_it_expires(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, second, other = await three_senders(db_engine, org_id)
    async with db_engine.begin() as conn:
        waiting = await insert_message(conn, org_id=org_id, status="QUEUED", sender_id=first)
    ends = int(time.time()) + 3600
    body = meta.changes(("account_update", meta.account_restriction(ends)), entry_id=W)

    processed = await process(db_engine, body)
    assert processed.management == {("account_update", "applied"): 1}
    assert [await reasons(db_engine, s) for s in (first, second, other)] == [
        ["account_restricted"],
        ["account_restricted"],
        [],
    ]
    row = await waba_row(db_engine, W)
    assert int(row.restricted_until.timestamp()) == ends
    async with db_engine.connect() as conn:
        marked = await conn.scalar(
            sa.select(outbound_message.c.waiting_reason).where(outbound_message.c.id == waiting)
        )
    assert marked == "sender_paused"

    sweep = ReceiptSweep(db_engine, metrics=Metrics(), pending_max_age_s=3600)
    assert (await sweep.run_once()).restrictions_lifted == 0  # not yet
    async with db_engine.begin() as conn:  # time passes: the restriction's end is behind us
        await conn.execute(
            waba.update()
            .where(waba.c.waba_id == W)
            .values(restricted_until=utcnow() - timedelta(seconds=1))
        )
    assert (await sweep.run_once()).restrictions_lifted == 1
    assert [await reasons(db_engine, s) for s in (first, second)] == [[], []]
    assert (await waba_row(db_engine, W)).restricted_until is None
    async with db_engine.connect() as conn:
        marked = await conn.scalar(
            sa.select(outbound_message.c.waiting_reason).where(outbound_message.c.id == waiting)
        )
    assert marked is None


async def test_a_ban_pauses_the_waba_and_a_reinstatement_resumes_it(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, second, _ = await three_senders(db_engine, org_id)
    async with db_engine.begin() as conn:  # a manual pause is not the ban's to lift
        await conn.execute(
            sender.update().where(sender.c.id == second).values(paused_reasons=["manual"])
        )
    await process(db_engine, meta.changes(("account_update", meta.ban("DISABLE")), entry_id=W))
    assert await reasons(db_engine, first) == ["account_restricted"]
    assert await reasons(db_engine, second) == ["manual", "account_restricted"]
    assert (await waba_row(db_engine, W)).restricted_until is None  # no end: it holds

    await process(db_engine, meta.changes(("account_update", meta.ban("REINSTATE")), entry_id=W))
    assert await reasons(db_engine, first) == []
    assert await reasons(db_engine, second) == ["manual"]


async def test_a_reinstate_event_resumes_and_other_account_events_change_nothing(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, _, _ = await three_senders(db_engine, org_id)
    await process(
        db_engine, meta.changes(("account_update", meta.account_restriction(None)), entry_id=W)
    )
    assert await reasons(db_engine, first) == ["account_restricted"]
    processed = await process(
        db_engine,
        meta.changes(
            ("account_update", meta.ban("SCHEDULE_FOR_DISABLE")),
            ("account_update", {"event": "ACCOUNT_RESTRICTION", "restriction_info": "x"}),
            entry_id=W,
        ),
    )
    assert processed.management == {("account_update", "ignored"): 2}
    assert await reasons(db_engine, first) == ["account_restricted"]
    await process(db_engine, meta.changes(("account_update", {"event": "REINSTATE"}), entry_id=W))
    assert await reasons(db_engine, first) == []


async def test_quality_updates_set_the_limit_and_a_throughput_upgrade_raises_that_number(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, second, _ = await three_senders(db_engine, org_id)
    async with db_engine.connect() as conn:
        display = await conn.scalar(
            sa.select(sender.c.display_phone_number).where(sender.c.id == second)
        )
    assert display is not None
    spaced = "+" + " ".join(ch for ch in display if ch.isdigit())  # digits compared
    body = meta.changes(
        ("phone_number_quality_update", meta.quality_update(spaced, current_limit="TIER_10K")),
        (
            "phone_number_quality_update",
            meta.quality_update(spaced, event="THROUGHPUT_UPGRADE"),
        ),
        entry_id=W,
    )
    processed = await process(db_engine, body)
    assert processed.management == {("phone_number_quality_update", "applied"): 2}
    assert (await waba_row(db_engine, W)).messaging_limit == "TIER_10K"
    async with db_engine.connect() as conn:
        rates = dict(
            (await conn.execute(sa.select(sender.c.id, sender.c.messages_per_second))).all()
        )
        audit = set(await conn.scalars(sa.select(audit_event.c.action)))
    assert (rates[first], rates[second]) == (80.0, 1000.0)
    assert {"waba.messaging_limit", "sender.throughput_upgraded"} <= audit


@pytest.mark.parametrize(
    ("given", "tier"),
    [
        ("TIER_2K", "TIER_2K"),
        ("TIER_UNLIMITED", "TIER_UNLIMITED"),
        (250, "TIER_250"),
        ("1000", "TIER_2K"),
        (2000, "TIER_2K"),
        (10000, "TIER_10K"),
        (100000, "TIER_100K"),
        (5000, None),
        ("lots", None),
    ],
)
async def test_business_capability_updates_map_to_tiers(
    db_engine: AsyncEngine, org_id: str, given: Any, tier: str | None
) -> None:
    await three_senders(db_engine, org_id)
    async with db_engine.begin() as conn:
        await conn.execute(
            waba.update().where(waba.c.waba_id == W).values(messaging_limit="TIER_250")
        )
    body = meta.changes(("business_capability_update", meta.capability_update(given)), entry_id=W)
    await process(db_engine, body)
    assert (await waba_row(db_engine, W)).messaging_limit == tier
    assert tier_of(given) == tier


async def test_a_change_for_an_unknown_waba_is_counted_unrouted(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, _, _ = await three_senders(db_engine, org_id)
    body = meta.changes(("account_update", meta.ban("DISABLE")), entry_id="waba-nobody")
    body["entry"].append({"changes": [{"field": "account_update", "value": meta.ban("DISABLE")}]})
    processed = await process(db_engine, body)
    assert processed.unrouted == {"account_update": 2}
    assert await reasons(db_engine, first) == []


async def test_malformed_management_values_never_fail_the_body(
    db_engine: AsyncEngine, org_id: str
) -> None:
    first, _, _ = await three_senders(db_engine, org_id)
    body = meta.changes(
        ("account_update", {"event": ["odd"], "ban_info": "DISABLE"}),
        ("phone_number_quality_update", {"event": "THROUGHPUT_UPGRADE", "display_phone_number": 5}),
        ("business_capability_update", {"max_daily_conversations_per_business": {"x": 1}}),
        ("account_update", "not an object"),
        ("account_update", meta.ban("DISABLE")),
        entry_id=W,
    )
    processed = await process(db_engine, body)
    assert processed.management[("account_update", "applied")] == 1
    assert processed.unused == {"malformed_change": 1}
    assert await reasons(db_engine, first) == ["account_restricted"]
    assert (await waba_row(db_engine, W)).messaging_limit is None
