"""The outbox of `bench/scale.py`: N messages over 50 organisations and their senders, with
their timelines, contacts, consents, WABAs and templates, written with COPY.

The spread (seeded, so two runs build the same tables): organisations weighted 1/rank (the
largest, `ORG`, holds about 22 % of the rows); one to three senders each, the default sending
80 %; recipients among the org's contacts (one per six of its messages); 90 % of the rows
finished (READ, DELIVERED, SENT, ACCEPTED, FAILED of which three quarters dead-lettered,
CANCELLED) and created over the last 90 days (the default retention); 10 % still waiting
(QUEUED, RETRYING, a few SENDING), created over the last 6 hours, most due now, the rest
scheduled, backing off or held by a limit (`waiting_reason`), and one paused sender's backlog
marked `sender_paused`. The rows are written in the order of their creation, as a table that
is only appended to lies on disk (which the index-only scans' visibility checks depend on).
Finished messages have two events (queued and their last status), waiting ones one.

The outbox's and the timeline's secondary indexes are dropped before the COPY and built again
after it (as a restore would), then the tables are vacuumed and analysed, as autovacuum would
have left them."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate, islice
from typing import Any

import asyncpg

ORGS = 50
CHUNK = 100_000  # rows a COPY
ORG = "org_scale_00"  # the largest organisation: the one the bench measures
DAY = timedelta(days=1)
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}
PROMO = {"name": "spring_promo", "language": "en_US", "components": []}
TEXT = {"body": "Your parcel is on its way"}

# (status, share of all rows); the last three are the waiting 10 %.
STATUSES = (
    ("READ", 0.30),
    ("DELIVERED", 0.45),
    ("SENT", 0.07),
    ("ACCEPTED", 0.01),
    ("FAILED_DEAD", 0.03),
    ("FAILED", 0.01),
    ("CANCELLED", 0.03),
    ("QUEUED", 0.083),
    ("RETRYING", 0.015),
    ("SENDING", 0.002),
)
ERRORS = (
    ("131026", "Message undeliverable"),
    ("131049", "This message was not delivered to maintain healthy ecosystem engagement."),
    ("131047", "Re-engagement message"),
    ("130429", "Rate limit hit"),
    ("132001", "Template does not exist"),
    ("http_503", None),
)
WAITING = ("throughput", "pair_interval", "messaging_limit", "quota")
PENDING = ("QUEUED", "RETRYING", "SENDING")

MESSAGE_COLUMNS = (
    "id", "org_id", "channel", "to_phone", "kind", "payload", "message_metadata",
    "idempotency_key", "request_hash", "status", "attempts", "max_attempts", "next_attempt_at",
    "lease_until", "claimed_by", "provider_message_id", "error_code", "error_title",
    "error_message", "error_retryable", "dead_lettered", "created_at", "updated_at",
    "accepted_at", "sent_at", "delivered_at", "read_at", "failed_at", "sender_id",
    "waiting_reason", "expires_at", "redacted",
)  # fmt: skip
EVENT_COLUMNS = (
    "message_id",
    "org_id",
    "at",
    "type",
    "from_status",
    "to_status",
    "actor",
    "details",
)


def org_id(i: int) -> str:
    return f"org_scale_{i:02d}"


def phone(org_index: int, contact: int) -> str:
    return f"+336{org_index * 2_000_000 + contact:08d}"


class Layout:
    """Who is who: organisations, their weights, senders, WABAs and contact counts."""

    def __init__(self, rows: int) -> None:
        weights = [1 / (i + 1) for i in range(ORGS)]
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.cum_weights = list(accumulate(self.weights))
        self.contacts = [max(20, int(rows * w / 6)) for w in self.weights]
        rng = random.Random(7)
        self.senders: list[list[uuid.UUID]] = [
            [uuid.UUID(int=rng.getrandbits(128)) for _ in range(1 + i % 3)] for i in range(ORGS)
        ]
        # One org's second number is paused (its backlog marked `sender_paused`).
        self.paused = self.senders[4][1]

    def sender_rows(self, now: datetime) -> list[tuple[Any, ...]]:
        rows = []
        for i, senders in enumerate(self.senders):
            for k, sender_id in enumerate(senders):
                paused = ["manual"] if sender_id == self.paused else []
                rows.append(
                    (sender_id, org_id(i), f"{10**14 + i * 10 + k}", f"waba_{i:02d}", k == 0,
                     80.0, json.dumps(paused), now, now)
                )  # fmt: skip
        return rows


def _ts(now: datetime, seconds_ago: float) -> datetime:
    return now - timedelta(seconds=seconds_ago)


def messages(layout: Layout, rows: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """The outbox rows, in MESSAGE_COLUMNS' order."""
    rng = random.Random(rows)
    finished = [(s, share) for s, share in STATUSES if s not in PENDING]
    pending = [(s, share) for s, share in STATUSES if s in PENDING]
    first_pending = round(rows * sum(share for _, share in finished))
    kinds = {
        True: ([s for s, _ in pending], list(accumulate(share for _, share in pending))),
        False: ([s for s, _ in finished], list(accumulate(share for _, share in finished))),
    }
    template, promo, text = json.dumps(TEMPLATE), json.dumps(PROMO), json.dumps(TEXT)
    orgs = rng.choices(range(ORGS), cum_weights=layout.cum_weights, k=rows)
    for n, o in enumerate(orgs):
        r = rng.random()
        # In time order, as a table that is only appended to is laid out: the finished rows over
        # 90 days up to 6 hours ago, then the waiting ones (a campaign queued in the last 6 hours).
        waiting = n >= first_pending
        names, cum = kinds[waiting]
        status = rng.choices(names, cum_weights=cum)[0]
        if waiting:
            created = _ts(now, 6 * 3600 * (rows - n) / (rows - first_pending))
        else:
            created = _ts(now, 6 * 3600 + (90 * 86400 - 6 * 3600) * (1 - n / first_pending))
        senders = layout.senders[o]
        sender_id = senders[0] if len(senders) == 1 or r < 0.8 else rng.choice(senders[1:])
        kind, payload = ("template", template) if r < 0.7 else ("text", text)
        if 0.7 <= r < 0.85:
            kind, payload = "template", promo
        to = phone(o, rng.randrange(layout.contacts[o]))
        key = f"k{n}" if r < 0.3 else None
        later = iter(created + timedelta(seconds=s) for s in (0.8, 3, 12, 3600))
        accepted = sent = delivered = read = failed = lease = claimed_by = wamid = None
        code = title = reason = None
        attempts, dead, next_at, updated = 1, False, created, created
        if status in ("ACCEPTED", "SENT", "DELIVERED", "READ"):
            wamid = f"wamid.{uuid.UUID(int=rng.getrandbits(128)).hex}"
            accepted = updated = next(later)
            if status != "ACCEPTED":
                sent = updated = next(later)
            if status in ("DELIVERED", "READ"):
                delivered = updated = next(later)
            if status == "READ":
                read = updated = next(later)
        elif status in ("FAILED", "FAILED_DEAD"):
            dead = status == "FAILED_DEAD"
            status = "FAILED"
            code, title = rng.choice(ERRORS)
            attempts = 5 if code in ("130429", "http_503") else 1
            failed = updated = created + timedelta(seconds=rng.random() * 600)
        elif status == "CANCELLED":
            attempts, updated = 0, created + timedelta(seconds=30)
        elif status == "SENDING":
            lease, claimed_by = now + timedelta(seconds=60), "w-scale"
        else:  # QUEUED or RETRYING
            attempts = 0 if status == "QUEUED" else rng.randint(1, 3)
            w = rng.random()
            if sender_id == layout.paused:
                reason = "sender_paused"
            elif w < 0.10:  # scheduled for later, or backing off
                next_at = now + timedelta(seconds=rng.random() * 7200)
            elif w < 0.22:  # held by a limit until its slot
                reason = rng.choice(WAITING)
                next_at = now + timedelta(seconds=rng.random() * 1800)
            if status == "RETRYING":
                code, title = "130429", "Rate limit hit"
        yield (
            uuid.UUID(int=rng.getrandbits(128), version=4), org_id(o), "WHATSAPP", to, kind,
            payload, "{}", key, "0" * 64 if key else None, status, attempts, 5, next_at, lease,
            claimed_by, wamid, code, title, title, (not dead) if code else None,
            dead, created, updated, accepted, sent, delivered, read, failed, sender_id, reason,
            None, False,
        )  # fmt: skip


def _with_timeline(
    rows: Iterator[tuple[Any, ...]], events: list[tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    """The rows, gathering into `events` each one's `queued` event and, for a finished message,
    its last status's."""
    for row in rows:
        message_id, org, status, created, updated = row[0], row[1], row[9], row[21], row[22]
        events.append((message_id, org, created, "queued", None, "QUEUED", "api", "{}"))
        if status not in PENDING:
            events.append(
                (message_id, org, updated, status.lower(), "SENDING", status, "webhook", "{}")
            )
        yield row


async def _secondary_indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """SELECT i.indexname, i.indexdef FROM pg_indexes AS i
           LEFT JOIN pg_constraint AS c ON c.conname = i.indexname
           WHERE i.tablename = $1 AND c.conname IS NULL""",
        table,
    )
    return [(r["indexname"], r["indexdef"]) for r in rows]


async def build(dsn: str, rows: int) -> dict[str, Any]:
    """Fill the migrated database at `dsn` (whose org `ORG` exists) with `rows` messages;
    returns the counts and the seconds each step took."""
    layout = Layout(rows)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.executemany(
            "INSERT INTO organization (id, name, created_at) VALUES ($1, $1, $2) "
            "ON CONFLICT DO NOTHING",
            [(org_id(i), now) for i in range(ORGS)],
        )
        await conn.copy_records_to_table(
            "waba", columns=["waba_id", "messaging_limit", "updated_at"],
            records=[(f"waba_{i:02d}", ("TIER_UNLIMITED", "TIER_10K", "TIER_100K")[i % 3], now)
                     for i in range(ORGS)],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "sender",
            columns=["id", "org_id", "phone_number_id", "waba_id", "is_default",
                     "messages_per_second", "paused_reasons", "created_at", "updated_at"],
            records=layout.sender_rows(now),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "template",
            columns=["waba_id", "name", "language", "status", "category", "components",
                     "updated_at"],
            records=[(f"waba_{i:02d}", t["name"], "en_US", "APPROVED", category, "[]", now)
                     for i in range(ORGS)
                     for t, category in ((TEMPLATE, "UTILITY"), (PROMO, "MARKETING"))],
        )  # fmt: skip
        contacts = [
            (org_id(i), phone(i, j)) for i in range(ORGS) for j in range(layout.contacts[i])
        ]
        await conn.copy_records_to_table(
            "consent",
            columns=["org_id", "phone", "status", "source", "granted_at", "updated_at"],
            records=[(o, p, "granted", "bench", now - 100 * DAY, now) for o, p in contacts],
        )
        await conn.copy_records_to_table(
            "service_window",
            columns=["org_id", "sender_id", "phone", "last_inbound_at"],
            records=[
                (o, layout.senders[int(o[-2:])][0], p, _ts(now, (k % 48) * 3600))
                for k, (o, p) in enumerate(contacts)
                if k % 20 == 0
            ],
        )
        timings["small_tables_s"] = time.perf_counter() - started

        started = time.perf_counter()
        dropped = []
        for table in ("outbound_message", "message_event"):
            for name, definition in await _secondary_indexes(conn, table):
                await conn.execute(f'DROP INDEX "{name}"')
                dropped.append(definition)
        source = messages(layout, rows, now)
        events = 0
        for _ in range(0, rows, CHUNK):
            chunk: list[tuple[Any, ...]] = []
            await conn.copy_records_to_table(
                "outbound_message",
                columns=list(MESSAGE_COLUMNS),
                records=_with_timeline(islice(source, CHUNK), chunk),
            )
            await conn.copy_records_to_table(
                "message_event", columns=list(EVENT_COLUMNS), records=chunk
            )
            events += len(chunk)
        timings["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for definition in dropped:
            await conn.execute(definition)
        timings["indexes_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("outbound_message", "message_event", "consent", "service_window", "sender"):
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
        sizes = await conn.fetchrow(
            """SELECT pg_total_relation_size('outbound_message') AS outbox,
                      pg_total_relation_size('message_event') AS events,
                      (SELECT count(*) FROM outbound_message WHERE org_id = $1) AS org_rows,
                      (SELECT count(*) FROM outbound_message
                       WHERE org_id = $1 AND dead_lettered) AS org_dead,
                      (SELECT sum(messages) FROM dlq_count WHERE org_id = $1) AS org_dead_counter,
                      (SELECT count(*) FROM outbound_message
                       WHERE status IN ('QUEUED', 'RETRYING')) AS waiting""",
            ORG,
        )
    finally:
        await conn.close()
    return {
        "rows": rows,
        "events": events,
        "contacts": len(contacts),
        "outbox_mb": round(sizes["outbox"] / 2**20),
        "events_mb": round(sizes["events"] / 2**20),
        "org_rows": sizes["org_rows"],
        "org_dead_lettered": sizes["org_dead"],
        # What the COPY's triggers counted into dlq_count: equal to the line above.
        "org_dead_lettered_counter": int(sizes["org_dead_counter"] or 0),
        "waiting": sizes["waiting"],
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
