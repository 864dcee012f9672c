"""Flat with size (issue #21): the hot queries' latency with the outbox at 10,000, 1,000,000 and
5,000,000 rows, each size in a PostgreSQL database of its own built with COPY
(bench/_scale_data.py: 90 % finished, 50 organisations, their senders, 90 days) and dropped
afterwards.

At each size, in interleaved rounds (so a neighbour's burst of load hits every figure alike):
- claim: the dispatcher's claim of 100 due rows, both statements (`lock_due`, then `claim`:
  SENDING under a lease and a `claimed` event each) in one transaction, rolled back so every
  round sees the same table;
- enqueue: `outbox.one.enqueue_one`, the single-message API's statement (committed: the table
  grows by the rounds' count);
- dlq report: `dlq.report.report` for the largest organisation (22 % of the rows);
- list: `outbox.messages.list_messages`, the first page (50) of the largest organisation;
and the same three through HTTP (`POST /v1/messages`, `GET /v1/dlq/report`, `GET /v1/messages`)
against `wa-outbound serve` on its own port, one request at a time. The target: each changes by
less than 1.5x from the smallest size to the largest. With `--plans`, the EXPLAIN (ANALYZE,
BUFFERS) of each statement at the largest size goes to that file.

    .venv/bin/python bench/scale.py [--quick] [--sizes 10k,1m,5m] [--rounds 60] [--plans FILE]

A 5,000,000-row build takes 5 to 15 minutes on two cores (and about 5 GB of disk while it lasts).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from _scale_data import ORG, TEMPLATE, build, phone
from _support import (
    create_database,
    drop_database,
    machine,
    percentile,
    serve,
    service_env,
    stop,
    write_results,
)
from wa_outbound.config import Settings
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.db.types import utcnow
from wa_outbound.dispatch.claims import claim, lock_due
from wa_outbound.dlq.report import report
from wa_outbound.orgs import organizations
from wa_outbound.outbox import one
from wa_outbound.outbox.enqueue import NewMessage
from wa_outbound.outbox.messages import list_messages

SIZES = (10_000, 1_000_000, 5_000_000)
QUICK_SIZES = (10_000, 200_000)
FIGURES = ("claim", "enqueue", "dlq_report", "list", "http_enqueue", "http_dlq_report", "http_list")
TARGET_RATIO = 1.5


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


class Capture:
    """The SQL and parameters SQLAlchemy sends while `on`: to EXPLAIN them afterwards."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        if self.on:
            self.statements.append((statement, params))


class Probe:
    """One size's database, service and measurements."""

    def __init__(self, engine: AsyncEngine, key: str, port: int) -> None:
        self.engine = engine
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
        )
        self.capture = Capture(engine)
        self.n = 0

    def _item(self) -> NewMessage:
        self.n += 1
        return NewMessage(
            to=phone(0, self.n % 20),
            kind="template",
            payload=TEMPLATE,
            metadata={},
            send_after=None,
            idempotency_key=None,
            request_hash="0" * 64,
        )

    async def claim(self) -> None:
        async with self.engine.connect() as conn:
            tx = await conn.begin()
            now = utcnow()
            due = await lock_due(conn, limit=100, now=now)
            claimed = await claim(conn, [d.id for d in due], worker="w-bench", lease_s=60, now=now)
            await tx.rollback()
        if len(claimed) != 100:
            raise RuntimeError(f"claimed {len(claimed)} of 100")

    async def enqueue(self) -> None:
        outcome = await one.enqueue_one(
            self.engine,
            org_id=ORG,
            item=self._item(),
            max_attempts=5,
            actor="api:bench",
            shared_sender=False,
        )
        if outcome is None or not outcome.created:
            raise RuntimeError("the enqueue statement inserted nothing")

    async def dlq_report(self) -> None:
        async with self.engine.connect() as conn:
            await report(conn, org_id=ORG, now=utcnow())

    async def list(self) -> None:
        async with self.engine.connect() as conn:
            rows, cursor = await list_messages(conn, org_id=ORG, limit=50)
        if len(rows) != 50 or cursor is None:
            raise RuntimeError("not a full first page")

    async def http_enqueue(self) -> None:
        self.n += 1
        body = {"to": phone(0, self.n % 20), "template": TEMPLATE}
        (await self.http.post("/v1/messages", json=body)).raise_for_status()

    async def http_dlq_report(self) -> None:
        (await self.http.get("/v1/dlq/report")).raise_for_status()

    async def http_list(self) -> None:
        (await self.http.get("/v1/messages", params={"limit": 50})).raise_for_status()

    async def plans(self) -> dict[str, str]:
        """EXPLAIN (ANALYZE, BUFFERS) of each measured statement, rolled back."""
        statements: dict[str, tuple[str, Any]] = {}
        for name, step in (("list", self.list), ("dlq_report", self.dlq_report)):
            self.capture.statements.clear()
            self.capture.on = True
            await step()
            self.capture.on = False
            for i, statement in enumerate(self.capture.statements):
                statements[f"{name} ({i + 1})"] = statement
        self.capture.statements.clear()
        self.capture.on = True
        await self.claim()
        self.capture.on = False
        statements["claim: lock_due"], statements["claim: claim"] = self.capture.statements[-2:]
        out: dict[str, str] = {}
        async with self.engine.connect() as conn:
            for name, (sql, params) in statements.items():
                tx = await conn.begin()
                rows = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                out[name] = "\n".join(r[0] for r in rows)
                await tx.rollback()
            driver: Any = (await conn.get_raw_connection()).driver_connection
            args = list(_enqueue_args(self._item()))
            tx = await conn.begin()
            rows = await driver.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {one._ENQUEUE}", *args)
            out["enqueue"] = "\n".join(r[0] for r in rows)
            await tx.rollback()
        return out


def _enqueue_args(item: NewMessage) -> tuple[Any, ...]:
    """enqueue_one's parameters for `item` (bench/scale.py EXPLAINs its statement)."""
    import orjson

    from wa_outbound.db.schema import SHARED_SENDER_ID

    now = utcnow()
    return (
        uuid.uuid4(), ORG, "WHATSAPP", item.to, item.kind, orjson.dumps(item.payload).decode(),
        "{}", None, item.request_hash, 5, now, now, "api:bench", "{}", False, SHARED_SENDER_ID,
        None, None, TEMPLATE["name"], TEMPLATE["language"],
    )  # fmt: skip


class Size:
    """One size's database, built, with its own service."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.dsn = ""
        self.engine: AsyncEngine | None = None
        self.service: Any = None
        self.probe: Probe | None = None
        self.result: dict[str, Any] = {}

    async def open(self, port: int) -> None:
        self.dsn, url = await create_database("wa_scale")
        engine = self.engine = create_engine(
            Settings(_env_file=None, database_url=url, provider="sandbox")
        )
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await organizations.create_org(
                conn, name="scale", org_id=ORG, daily_quota=10**9, messages_per_second=None,
                actor="bench",
            )  # fmt: skip
            key = await organizations.create_api_key(conn, org_id=ORG, name="bench", actor="bench")
        started = time.perf_counter()
        built = await build(self.dsn, self.rows)
        built["build_s"] = round(time.perf_counter() - started, 1)
        self.result["build"] = built
        print(f"{self.rows:,} rows built in {built['build_s']} s: {built}", flush=True)
        env = service_env(url, WA_PROVIDER="sandbox", WA_DISPATCH_ENABLED="false")
        env["WA_RETENTION_DAYS"] = "0"
        self.service = await asyncio.to_thread(serve, env, port)
        self.probe = Probe(engine, key.api_key, port)

    async def close(self) -> None:
        if self.probe is not None:
            await self.probe.http.aclose()
        if self.service is not None:
            stop(self.service)
        if self.engine is not None:
            await self.engine.dispose()
        if self.dsn:
            await drop_database(self.dsn)


async def measure(sizes: list[Size], rounds: int) -> None:
    """Every figure of every size in each round, in turn: a burst of the neighbours' load
    falls on all sizes alike, so the smallest is a baseline measured in the same run."""
    probes = [size.probe for size in sizes if size.probe is not None]
    for probe in probes:  # warm: the pools, prepared statements, caches
        for name in FIGURES:
            for _ in range(3):
                await getattr(probe, name)()
    times: dict[int, dict[str, list[float]]] = {s.rows: {f: [] for f in FIGURES} for s in sizes}
    for _ in range(rounds):
        for size in sizes:
            assert size.probe is not None
            for name in FIGURES:
                step = getattr(size.probe, name)
                started = time.perf_counter()
                await step()
                times[size.rows][name].append((time.perf_counter() - started) * 1000)
    for size in sizes:
        size.result["figures"] = {
            name: {"p50_ms": percentile(t, 50), "p90_ms": percentile(t, 90)}
            for name, t in times[size.rows].items()
        }


def summary(results: dict[int, dict[str, Any]]) -> str:
    sizes = sorted(results)
    head = "figure (p50 ms)".ljust(18) + "".join(f"{s:>12,}" for s in sizes) + "   ratio  target"
    lines = [head]
    for figure in FIGURES:
        values = [results[s]["figures"][figure]["p50_ms"] for s in sizes]
        ratio = values[-1] / values[0]
        verdict = "met" if ratio < TARGET_RATIO else "MISSED"
        cells = "".join(f"{v:>12.2f}" for v in values)
        lines.append(f"{figure:<18}{cells}   {ratio:5.2f}  < {TARGET_RATIO} {verdict}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 200k rows")
    parser.add_argument("--sizes", help="comma-separated row counts (10k, 1m, 5m, 250000)")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--port", type=int, default=7711, help="the first service's port")
    parser.add_argument("--plans", type=Path, help="write the largest size's EXPLAINs here")
    args = parser.parse_args()
    rows = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = [Size(n) for n in sorted(rows or (QUICK_SIZES if args.quick else SIZES))]
    try:
        for i, size in enumerate(sizes):
            await size.open(args.port + i)
        load_before = machine()["load_average"]
        started = time.perf_counter()
        await measure(sizes, args.rounds)
        seconds = round(time.perf_counter() - started, 1)
        load_after = machine()["load_average"]
        largest = sizes[-1]
        if args.plans is not None and largest.probe is not None:
            plans = await largest.probe.plans()
            largest.result["plans"] = plans
            text = "".join(f"-- {name}\n{plan}\n\n" for name, plan in plans.items())
            args.plans.write_text(text)
    finally:
        for size in sizes:
            await size.close()
    results = {size.rows: size.result for size in sizes}
    print(summary(results))
    print(f"measured in {seconds} s, load average {load_before} before, {load_after} after")
    measured = {"seconds": seconds, "load_before": load_before, "load_after": load_after}
    sized = {str(k): v for k, v in results.items()}
    path = write_results("scale", {"measure": measured, "rounds": args.rounds, "sizes": sized})
    print(f"wrote {path}")


if __name__ == "__main__":
    uvloop.run(main())
