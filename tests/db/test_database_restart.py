"""A PostgreSQL restart in the middle of a campaign, against a real `wa-outbound serve` process.

The service (provider `cloud`, pointed at the fake Meta, which posts `sent`, `delivered` and
`read` back to the service's webhook) is dispatching a few thousand messages when its private
PostgreSQL cluster is stopped, kept down for several seconds, and started again.

During the outage the API answers 503 with the error body (no hang, no 500), readiness is 503,
and Meta's webhooks get a non-200 (so Meta retries). Afterwards the service, never restarted,
recovers by itself: readiness is 200 with every loop running, every message reaches READ
(so none was stuck and no webhook was lost), and at most the in-flight sends were repeated.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

import meta_payloads as meta
from fake_meta import FakeMeta, running_fake_meta
from helpers import ADMIN, ADMIN_TOKEN, TEMPLATE, TEST_SECRET_KEY, eventually, free_port
from private_postgres import PrivatePostgres

pytestmark = pytest.mark.slow

MESSAGES = 3000
RECIPIENTS = [f"+3361234{n:04d}" for n in range(10)]
CONCURRENCY = 32  # the dispatcher's sends in flight: the most that may be sent twice
OUTAGE_S = 6.0
TOKEN = "restart-token"
SECRET = "restart-app-secret"
# An answer slower than this is a hang: the test fails rather than waits.
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
async def fake_meta_and_service(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> AsyncIterator[tuple[FakeMeta, Service]]:
    port = free_port()
    service_url = f"http://127.0.0.1:{port}"
    fake = FakeMeta(
        token=TOKEN,
        phone_number_id=meta.PHONE_NUMBER_ID,
        webhook_url=f"{service_url}/webhooks/whatsapp",
        app_secret=SECRET,
        auto_statuses=True,
        status_attempts=120,  # about two minutes of retries, as Meta keeps retrying for days
    )
    async with running_fake_meta(fake) as fake_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
        env.update(
            WA_DATABASE_URL=private_postgres.url,
            WA_PROVIDER="cloud",
            WA_SECRET_KEYS=TEST_SECRET_KEY,
            WA_GRAPH_API_BASE_URL=fake_url,
            WA_ACCESS_TOKEN=TOKEN,
            WA_PHONE_NUMBER_ID=meta.PHONE_NUMBER_ID,
            WA_APP_SECRET=SECRET,
            WA_ADMIN_TOKEN=ADMIN_TOKEN,
            WA_DISPATCH_CONCURRENCY=str(CONCURRENCY),
            WA_ALERT_INTERVAL_SECONDS="1",
            WA_METRICS_REFRESH_SECONDS="1",
            WA_LOG_FORMAT="json",
            # 3,000 messages to 10 recipients: pacing each pair would make the campaign last
            # half an hour; it is not what this test is about.
            WA_PAIR_INTERVAL_SECONDS="0",
        )
        log = tmp_path / "service.log"
        process = await asyncio.to_thread(_serve, port, env, log)
        try:
            async with httpx.AsyncClient(base_url=service_url, timeout=2) as client:

                async def live() -> bool:
                    assert process.poll() is None, log.read_text()
                    try:
                        return (await client.get("/health/live")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(live, timeout_s=60)
            yield fake, Service(service_url, process, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


def _serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "wa-outbound"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def statuses(private_postgres: PrivatePostgres) -> dict[str, int]:
    conn = await asyncpg.connect(private_postgres.url.replace("+asyncpg", ""), timeout=5)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM outbound_message GROUP BY status")
        return {row[0]: row[1] for row in rows}
    finally:
        await conn.close()


async def unprocessed_webhooks(private_postgres: PrivatePostgres) -> int:
    conn = await asyncpg.connect(private_postgres.url.replace("+asyncpg", ""), timeout=5)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM webhook_event WHERE processed_at IS NULL")
        )
    finally:
        await conn.close()


async def test_the_service_rides_out_a_database_restart_mid_campaign(
    private_postgres: PrivatePostgres, fake_meta_and_service: tuple[FakeMeta, Service]
) -> None:
    fake, service = fake_meta_and_service
    async with httpx.AsyncClient(base_url=service.url, timeout=REQUEST_TIMEOUT_S) as client:
        # An organisation allowed 250 messages/s: the campaign takes about 12 s to send.
        org = await client.post(
            "/v1/admin/orgs",
            json={"name": "Campaign", "daily_quota": 1_000_000, "messages_per_second": 250},
            headers=ADMIN,
        )
        assert org.status_code == 201, org.text
        key = await client.post(f"/v1/admin/orgs/{org.json()['id']}/api-keys", headers=ADMIN)
        auth = {"Authorization": f"Bearer {key.json()['api_key']}"}
        for phone in RECIPIENTS:
            consent = await client.put(
                f"/v1/consents/{phone}", json={"status": "granted"}, headers=auth
            )
            assert consent.status_code == 200, consent.text
        for start in range(0, MESSAGES, 1000):
            batch = [
                {"to": RECIPIENTS[n % len(RECIPIENTS)], "template": TEMPLATE}
                for n in range(start, start + 1000)
            ]
            queued = await client.post("/v1/messages/batch", json={"messages": batch}, headers=auth)
            assert queued.status_code == 200, queued.text
        some_id = queued.json()["results"][0]["message"]["id"]

        await eventually(lambda: fake.received.accepted >= 500, timeout_s=60)
        await asyncio.to_thread(private_postgres.stop)
        sent_before_outage = fake.received.accepted
        assert sent_before_outage < MESSAGES, "the campaign ended before the outage"

        # --- the database is down ---
        one = {"to": RECIPIENTS[0], "template": TEMPLATE}
        for response in (
            await client.post("/v1/messages", json=one, headers=auth),
            await client.get(f"/v1/messages/{some_id}", headers=auth),
            await client.get("/v1/rate-limits/whatsapp/quota", headers=auth),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "service_unavailable"
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["components"]["database"]["status"] == "down"
        webhook = orjson.dumps(meta.envelope(statuses=[meta.status("wamid.OUTAGE", "sent")]))
        answer = await client.post(
            "/webhooks/whatsapp",
            content=webhook,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": meta.sign(webhook, SECRET),
            },
        )
        assert answer.status_code != 200
        await asyncio.sleep(OUTAGE_S)  # the dispatcher and the loops keep failing meanwhile
        await asyncio.to_thread(private_postgres.start)

        # --- the database is back: everything recovers without a restart ---
        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready_again, timeout_s=60)

        async def all_read() -> bool:
            return (await statuses(private_postgres)).get("READ", 0) == MESSAGES

        await eventually(all_read, timeout_s=180)
        await eventually(lambda: fake.received.accepted >= MESSAGES, timeout_s=10)

        async def webhooks_all_processed() -> bool:
            return await unprocessed_webhooks(private_postgres) == 0

        await eventually(webhooks_all_processed, timeout_s=60)
        ready = await client.get("/health/ready")
        workers = ready.json()["components"]["workers"]
        assert {name: w["status"] for name, w in workers.items()} == dict.fromkeys(
            workers, "running"
        )
        after = await client.post("/v1/messages", json=one, headers=auth)
        assert after.status_code == 202, after.text
        await eventually(lambda: fake.received.accepted >= MESSAGES + 1, timeout_s=30)

    assert service.process.poll() is None, "the service was not to be restarted"
    assert fake.webhooks is not None
    assert fake.webhooks.given_up == 0, "a webhook was lost"
    assert fake.received.accepted - (MESSAGES + 1) <= CONCURRENCY  # duplicates
    assert "unhandled error" not in service.log.read_text()
