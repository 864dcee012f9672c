"""What a held or paused backlog costs each claim round: the time of the claim's first
statement (`lock_due`, 100 rows) with 100 sendable messages queued behind a backlog of N older
ones that cannot be sent, for each kind of backlog, beside no backlog in the same run.

    .venv/bin/python bench/claim_backlog.py [--backlog N]

Kinds: a paused sender's messages marked `sender_paused` (left out by the partial index
ix_outbound_message_claim_ready), a paused sender's messages not marked (filtered by the join
with `sender`), a sender held in memory for its throughput (`skip_senders`), and messages
waiting for a pair slot or the messaging limit (`next_attempt_at` in the future). Uses a
PostgreSQL database of its own, dropped afterwards."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

from _support import TEMPLATE, create_database, drop_database
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import organization, outbound_message, sender
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.due import lock_due

KINDS = ("none", "paused, marked", "paused, not marked", "held in memory", "waiting, written")


def message(org: str, sender_id: uuid.UUID, at: object, **columns: object) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "org_id": org,
        "channel": "WHATSAPP",
        "to_phone": f"+1{uuid.uuid4().int % 10**11:011d}",
        "kind": "template",
        "payload": TEMPLATE,
        "message_metadata": {},
        "status": "QUEUED",
        "attempts": 0,
        "max_attempts": 5,
        "next_attempt_at": at,
        "dead_lettered": False,
        "created_at": at,
        "updated_at": at,
        "sender_id": sender_id,
        **columns,
    }


async def run(backlog: int) -> None:
    dsn, url = await create_database()
    engine = create_engine(Settings(_env_file=None, database_url=url, provider="sandbox"))
    try:
        await migrate.upgrade(engine)
        now = utcnow()
        org = "bench"
        blocked, free = uuid.uuid4(), uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(organization.insert().values(id=org, name=org, created_at=now))
            for sender_id, reasons in ((blocked, []), (free, [])):
                await conn.execute(
                    sender.insert().values(
                        id=sender_id,
                        org_id=org,
                        phone_number_id=str(sender_id.int % 10**15),
                        is_default=sender_id == free,
                        messages_per_second=80,
                        paused_reasons=reasons,
                        created_at=now,
                        updated_at=now,
                    )
                )
            old = now - timedelta(hours=1)
            rows = [message(org, blocked, old + timedelta(microseconds=i)) for i in range(backlog)]
            for start in range(0, len(rows), 5000):
                await conn.execute(outbound_message.insert(), rows[start : start + 5000])
            await conn.execute(
                outbound_message.insert(), [message(org, free, now) for _ in range(100)]
            )
        await _vacuum(engine)
        m = outbound_message.c
        print(f"backlog of {backlog:,} older messages, 100 sendable behind it; lock_due(100):")
        for kind in KINDS:
            skip: list[uuid.UUID] = []
            async with engine.begin() as conn:
                waiting = m.sender_id == blocked
                if kind == "none":
                    await conn.execute(
                        outbound_message.update().where(waiting).values(status="SENT")
                    )
                if kind.startswith("paused"):
                    await conn.execute(
                        sender.update()
                        .where(sender.c.id == blocked)
                        .values(paused_reasons=["manual"])
                    )
                    marked = "sender_paused" if kind == "paused, marked" else None
                    await conn.execute(
                        outbound_message.update()
                        .where(waiting)
                        .values(status="QUEUED", waiting_reason=marked)
                    )
                else:
                    await conn.execute(
                        sender.update().where(sender.c.id == blocked).values(paused_reasons=[])
                    )
                if kind == "held in memory":
                    skip = [blocked]
                if kind == "waiting, written":
                    await conn.execute(
                        outbound_message.update()
                        .where(waiting)
                        .values(
                            status="QUEUED",
                            waiting_reason="pair_interval",
                            next_attempt_at=now + timedelta(minutes=5),
                        )
                    )
            await _vacuum(engine)
            times = []
            for _ in range(30):
                async with engine.begin() as conn:
                    started = time.perf_counter()
                    due = await lock_due(conn, limit=100, now=utcnow(), skip_senders=skip)
                    times.append(time.perf_counter() - started)
                    assert all(row.sender_id == free for row in due), kind
                    assert len(due) == 100, (kind, len(due))
            print(
                f"  {kind:22} p50 {statistics.median(times) * 1000:8.2f} ms"
                f"   max {max(times) * 1000:8.2f} ms"
            )
    finally:
        await engine.dispose()
        await drop_database(dsn)


async def _vacuum(engine: sa.ext.asyncio.AsyncEngine) -> None:
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(sa.text("VACUUM ANALYZE outbound_message"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(run(args.backlog))


if __name__ == "__main__":
    main()
