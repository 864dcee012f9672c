"""`dlq_count` stays exact: after each writer of `dead_lettered` (the dispatcher's outcomes, a
late `failed` receipt and the delivery that overrules it, replay one and in bulk, discard,
expiry, retention, erasure, direct inserts), on SQLite and PostgreSQL, its rows equal the
outbox's `count(*)` per organisation and channel; `recount` repairs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alert_factories import add, add_dead, add_messages, dead_row
from dispatch_helpers import claim_as, new_org, queue
from wa_outbound.db import dlq_counts
from wa_outbound.db.schema import dlq_count, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch import expiry, outcomes
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.dlq import replay
from wa_outbound.lifecycle.erasure import erase_contact
from wa_outbound.lifecycle.retention import delete_messages
from wa_outbound.receipts.statuses import StatusUpdate, apply_statuses
from wa_outbound.status import Status
from wa_outbound.whatsapp.retry import ProviderError

m = outbound_message.c
PHONES = [f"+3361234{i:04d}" for i in range(6)]
UNDELIVERABLE = ProviderError(code="131026", title="Message undeliverable", message="no")

Counts = dict[tuple[str, str], int]


async def counter(engine: AsyncEngine) -> Counts:
    """The counters, without the (org, channel) pairs back at zero."""
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(dlq_count).where(dlq_count.c.messages != 0))
        return {(r.org_id, r.channel): int(r.messages) for r in rows}


async def assert_exact(engine: AsyncEngine) -> Counts:
    """The counters equal the outbox's count of dead letters per (org, channel); returned."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(m.org_id, m.channel, sa.func.count())
            .where(m.dead_lettered.is_(True))
            .group_by(m.org_id, m.channel)
        )
        counted = {(org, channel): int(n) for org, channel, n in rows}
    assert await counter(engine) == counted
    return counted


async def dead_letter(engine: AsyncEngine, orgs: Sequence[str]) -> list[uuid.UUID]:
    """One message of each org in `orgs` (repeats allowed), claimed and failed for good by the
    dispatcher's outcome path in one batch; their ids."""
    for org in orgs:
        await queue(engine, org, PHONES[0])
    claimed = await claim_as(engine, "w", now=utcnow())
    assert len(claimed) == len(orgs)
    failures = [
        Outcome(c, Status.FAILED, "failed", error=UNDELIVERABLE, dead_lettered=True)
        for c in claimed
    ]
    async with engine.begin() as conn:
        await outcomes.write_outcomes(conn, failures, now=utcnow(), actor="test")
    return [c.id for c in claimed]


async def test_dispatcher_failures_replay_and_discard_keep_the_counter_exact(
    db_engine: AsyncEngine,
) -> None:
    acme = await new_org(db_engine, *PHONES)
    globex = await new_org(db_engine, *PHONES)
    await dead_letter(db_engine, [globex, acme, globex, acme, acme])
    assert await assert_exact(db_engine) == {(acme, "WHATSAPP"): 3, (globex, "WHATSAPP"): 2}

    acme_ids = await _ids_of(db_engine, acme)
    async with db_engine.begin() as conn:
        await replay.replay_one(conn, org_id=acme, message_id=acme_ids[0], actor="test")
    assert (await assert_exact(db_engine))[(acme, "WHATSAPP")] == 2

    async with db_engine.begin() as conn:  # in bulk, by error code
        replayed = await replay.replay(conn, org_id=acme, actor="test", error_code="131026")
    assert len(replayed) == 2
    assert (acme, "WHATSAPP") not in await assert_exact(db_engine)

    globex_ids = await _ids_of(db_engine, globex)
    async with db_engine.begin() as conn:
        await replay.discard(conn, org_id=globex, message_id=globex_ids[0], actor="test")
    assert await assert_exact(db_engine) == {(globex, "WHATSAPP"): 1}


async def _ids_of(engine: AsyncEngine, org_id: str) -> list[uuid.UUID]:
    async with engine.connect() as conn:
        query = sa.select(m.id).where(m.org_id == org_id, m.dead_lettered.is_(True)).order_by(m.id)
        return list(await conn.scalars(query))


async def test_a_late_failed_receipt_dead_letters_and_a_later_delivery_takes_it_back(
    db_engine: AsyncEngine,
) -> None:
    org = await new_org(db_engine, PHONES[0])
    await queue(db_engine, org, PHONES[0])
    [claimed] = await claim_as(db_engine, "w", now=utcnow())
    async with db_engine.begin() as conn:
        accepted = Outcome(claimed, Status.ACCEPTED, "accepted", "wamid.LATE")
        await outcomes.write_outcomes(conn, [accepted], now=utcnow(), actor="test")
    assert await assert_exact(db_engine) == {}

    failed = StatusUpdate("wamid.LATE", "failed", None, {"code": "131026", "title": "No"})
    async with db_engine.begin() as conn:
        assert await apply_statuses(conn, [failed], actor="test", now=utcnow()) == ["applied"]
    assert await assert_exact(db_engine) == {(org, "WHATSAPP"): 1}

    delivered = StatusUpdate("wamid.LATE", "delivered", None, None)
    async with db_engine.begin() as conn:
        assert await apply_statuses(conn, [delivered], actor="test", now=utcnow()) == ["applied"]
    assert await assert_exact(db_engine) == {}


async def test_inserts_expiry_erasure_and_retention_keep_the_counter_exact(
    db_engine: AsyncEngine,
) -> None:
    now = utcnow()
    old = now - timedelta(days=100)
    # Rows written straight in (a restore, a bulk load): two orgs, two channels, one statement.
    await add_messages(
        db_engine,
        [dead_row(org_id="acme", to_phone=PHONES[1], updated_at=old) for _ in range(3)]
        + [dead_row(org_id="acme", channel="SMS", updated_at=now) for _ in range(2)]
        + [dead_row(org_id="globex", updated_at=now)],
    )
    await add(db_engine, 4, org_id="acme", status="DELIVERED", updated_at=old)
    # Waiting and past its expiry: expiry fails it, not dead-lettered.
    await add(db_engine, 2, org_id="acme", expires_at=now - timedelta(minutes=1))
    await add_dead(db_engine, 1, org_id="globex", to_phone=PHONES[2], updated_at=now)
    assert await assert_exact(db_engine) == {
        ("acme", "WHATSAPP"): 3,
        ("acme", "SMS"): 2,
        ("globex", "WHATSAPP"): 2,
    }

    async with db_engine.begin() as conn:
        assert await expiry.expire_due(conn, now=now, actor="test") == 2
    await assert_exact(db_engine)

    async with db_engine.begin() as conn:  # its dead letter stays in the DLQ, redacted
        await erase_contact(
            conn, org_id="globex", phone=PHONES[2], key=b"k" * 32, shared_numbers=(), actor="t"
        )
    assert (await assert_exact(db_engine))[("globex", "WHATSAPP")] == 2

    async with db_engine.begin() as conn:  # the old finished messages, dead letters among them
        deleted = await delete_messages(conn, before=now - timedelta(days=90), limit=100)
    assert deleted["outbound_message"] == 7
    assert await assert_exact(db_engine) == {("acme", "SMS"): 2, ("globex", "WHATSAPP"): 2}


async def test_recount_puts_wrong_counters_right_and_says_which(db_engine: AsyncEngine) -> None:
    await add_dead(db_engine, 3, org_id="acme")
    await add_dead(db_engine, 1, org_id="globex")
    async with db_engine.begin() as conn:
        await conn.execute(
            dlq_count.update().where(dlq_count.c.org_id == "acme").values(messages=9)
        )
        await conn.execute(dlq_count.delete().where(dlq_count.c.org_id == "globex"))
        await conn.execute(dlq_count.insert().values(org_id="gone", channel="WHATSAPP", messages=4))
    async with db_engine.begin() as conn:
        wrong = await dlq_counts.recount(conn)
    assert wrong == [
        {"org_id": "acme", "channel": "WHATSAPP", "counter": 9, "counted": 3},
        {"org_id": "globex", "channel": "WHATSAPP", "counter": 0, "counted": 1},
        {"org_id": "gone", "channel": "WHATSAPP", "counter": 4, "counted": 0},
    ]
    assert await assert_exact(db_engine) == {("acme", "WHATSAPP"): 3, ("globex", "WHATSAPP"): 1}
    async with db_engine.begin() as conn:
        assert await dlq_counts.recount(conn) == []
        assert await dlq_counts.total(conn) == 4


async def _counter_updates(conn: AsyncConnection) -> int:
    """Rows of `dlq_count` updated by this backend and not yet in the cumulative statistics
    (PostgreSQL 15 keeps earlier transactions' counts pending for up to a second: take a
    difference)."""
    query = "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'dlq_count'"
    return int(await conn.scalar(sa.text(query)) or 0)


async def test_a_bulk_replay_updates_the_orgs_counter_once_on_postgres(
    pg_engine: AsyncEngine,
) -> None:
    """PostgreSQL's triggers are per statement: 500 messages leaving the DLQ in one UPDATE write
    the counter row once, not 500 times."""
    await add_dead(pg_engine, 500, org_id="acme")
    async with pg_engine.begin() as conn:
        before = await _counter_updates(conn)
        replayed = await replay.replay(conn, org_id="acme", actor="test", error_code="131026")
        assert len(replayed) == 500
        assert await _counter_updates(conn) - before == 1
    assert await assert_exact(pg_engine) == {}


async def test_concurrent_dead_letters_of_one_org_lose_no_update_on_postgres(
    pg_engine: AsyncEngine,
) -> None:
    """Two dispatchers' outcome transactions dead-letter messages of the same org at once: the
    second waits for the first's commit on the counter's row, then adds its own."""
    org = await new_org(pg_engine, PHONES[0])
    await queue(pg_engine, org, PHONES[0], PHONES[0], PHONES[0])
    first, second, third = await claim_as(pg_engine, "w", now=utcnow())

    def failures(*claimed: Claimed) -> list[Outcome]:
        return [
            Outcome(c, Status.FAILED, "failed", error=UNDELIVERABLE, dead_lettered=True)
            for c in claimed
        ]

    async with pg_engine.connect() as a, pg_engine.connect() as b:
        await a.begin()
        await outcomes.write_outcomes(a, failures(first), now=utcnow(), actor="a")
        await b.begin()
        waiting = asyncio.create_task(
            outcomes.write_outcomes(b, failures(second, third), now=utcnow(), actor="b")
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the counter's row is a's until it commits
        await a.commit()
        await asyncio.wait_for(waiting, timeout=10)
        await b.commit()
    assert await assert_exact(pg_engine) == {(org, "WHATSAPP"): 3}
