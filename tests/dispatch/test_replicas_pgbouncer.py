"""Two `wa-outbound serve` replicas whose WA_DATABASE_URL goes through one PgBouncer in
transaction mode (`default_pool_size` 5: five server connections for both), their sessions
(LISTEN, the alert leader's lock) on WA_DATABASE_SESSION_URL: 2,000 messages queued through
both (single and batch enqueues), each sent to the fake Meta once, each READ through Meta's
webhooks, and no error logged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

import meta_payloads as meta
from conftest import _dsn
from fake_meta import FakeMeta, running_fake_meta
from helpers import ADMIN, ADMIN_TOKEN, TEMPLATE, TEST_SECRET_KEY, eventually, free_port
from private_pgbouncer import PrivatePgBouncer

pytestmark = pytest.mark.slow

SINGLES = 1000
BATCHES = 2  # of 500
MESSAGES = SINGLES + BATCHES * 500
RECIPIENTS = [f"+3364000{n:04d}" for n in range(20)]
TOKEN = "bouncer-token"
SECRET = "bouncer-app-secret"


def _start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "wa-outbound"), "serve", "--no-migrate"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@asynccontextmanager
async def replica(
    port: int, env: dict[str, str], log: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    process = await asyncio.to_thread(_start, port, env, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:

            async def live() -> bool:
                assert process.poll() is None, f"the replica stopped: see {log}"
                try:
                    return (await client.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(live, timeout_s=60)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def statuses(postgres_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM outbound_message GROUP BY status")
        return {row[0]: row[1] for row in rows}
    finally:
        await conn.close()


async def test_two_replicas_through_pgbouncer_deliver_2000_messages_without_error(
    postgres_url: str, pgbouncer: PrivatePgBouncer, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    fake = FakeMeta(
        token=TOKEN,
        phone_number_id=meta.PHONE_NUMBER_ID,
        webhook_url=f"{urls[0]}/webhooks/whatsapp",
        app_secret=SECRET,
        auto_statuses=True,
    )
    logs = [tmp_path / f"replica-{n}.log" for n in range(2)]
    async with running_fake_meta(fake) as fake_url, AsyncExitStack() as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
        env.update(
            WA_DATABASE_URL=pgbouncer.url(postgres_url),
            WA_DATABASE_SESSION_URL=postgres_url,
            WA_PROVIDER="cloud",
            WA_SECRET_KEYS=TEST_SECRET_KEY,
            WA_GRAPH_API_BASE_URL=fake_url,
            WA_ACCESS_TOKEN=TOKEN,
            WA_PHONE_NUMBER_ID=meta.PHONE_NUMBER_ID,
            WA_APP_SECRET=SECRET,
            WA_ADMIN_TOKEN=ADMIN_TOKEN,
            WA_ALERT_INTERVAL_SECONDS="1",
            WA_DISPATCH_POLL_SECONDS="0.2",
            WA_PAIR_INTERVAL_SECONDS="0",  # 20 recipients: pacing each pair is not the point
            WA_LOG_FORMAT="json",
            WA_LOG_LEVEL="WARNING",
        )
        for port, log in zip(ports, logs, strict=True):
            await stack.enter_async_context(replica(port, env, log))
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            for url in urls
        ]
        org = await clients[0].post(
            "/v1/admin/orgs",
            json={"name": "Bouncer", "daily_quota": 1_000_000, "messages_per_second": 1000},
            headers=ADMIN,
        )
        assert org.status_code == 201, org.text
        key = await clients[1].post(f"/v1/admin/orgs/{org.json()['id']}/api-keys", headers=ADMIN)
        auth = {"Authorization": f"Bearer {key.json()['api_key']}"}
        for n, phone in enumerate(RECIPIENTS):
            consent = await clients[n % 2].put(
                f"/v1/consents/{phone}", json={"status": "granted"}, headers=auth
            )
            assert consent.status_code == 200, consent.text

        slots = asyncio.Semaphore(16)

        async def single(n: int) -> int:
            async with slots:
                body = {"to": RECIPIENTS[n % len(RECIPIENTS)], "template": TEMPLATE}
                response = await clients[n % 2].post("/v1/messages", json=body, headers=auth)
                return response.status_code

        async def batch(n: int) -> int:
            body = {
                "messages": [
                    {"to": RECIPIENTS[i % len(RECIPIENTS)], "template": TEMPLATE}
                    for i in range(500)
                ]
            }
            response = await clients[n % 2].post("/v1/messages/batch", json=body, headers=auth)
            return response.status_code

        answers = await asyncio.gather(
            *(single(n) for n in range(SINGLES)), *(batch(n) for n in range(BATCHES))
        )
        assert set(answers[:SINGLES]) == {202}
        assert set(answers[SINGLES:]) == {200}

        async def all_read() -> bool:
            return await statuses(postgres_url) == {"READ": MESSAGES}

        await eventually(all_read, timeout_s=300)  # a bound, not a speed: 130 s at load 10
        ready = [await c.get("/health/ready") for c in clients]
    assert [r.status_code for r in ready] == [200, 200], [r.text for r in ready]
    # As many sends accepted as messages, and every message READ: none was sent twice.
    assert fake.received.accepted == MESSAGES
    for log in logs:
        records = [orjson.loads(line) for line in log.read_bytes().splitlines() if line[:1] == b"{"]
        errors = [r for r in records if r.get("level") in ("ERROR", "CRITICAL")]
        assert errors == [], errors
        assert b"Traceback" not in log.read_bytes()
