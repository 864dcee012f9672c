"""The fault matrix: three replicas on PostgreSQL and Redis send 5,000 messages to a fake Meta that
fails a fifth of the sends in every way it can, while a replica is killed (-9) every few seconds,
Redis is restarted once and PostgreSQL once. Nothing is lost, no status moves backwards, a
duplicate is only ever a send that was in flight in a killed process or one on its message's
timeline, and a quota holds through all of it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from helpers import ADMIN_TOKEN, TEST_SECRET_KEY, PrivateRedis
from private_postgres import PrivatePostgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "matrix-token"
MESSAGES = 5_000
QUOTA_LIMIT, QUOTA_QUEUED = 300, 400  # a second org whose quota must hold
REPLICAS = 3
KILL_EVERY_S = 3.0
CHAOS_S = 24.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _popen(
    args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A Python process of this interpreter; its standard error appended to `log`."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab") if log else subprocess.DEVNULL,
    )


@dataclass
class Replica:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    killed_pids: list[int] = field(default_factory=list)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres = PrivatePostgres()
    redis = PrivateRedis(tmp_path)
    postgres.start()
    redis.start()
    try:
        yield postgres, redis
    finally:
        redis.stop()
        postgres.destroy()


async def _wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")


async def test_fault_matrix(cluster: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path) -> None:
    postgres, redis = cluster
    rng = random.Random(14)
    database_url = postgres.url.rsplit("/", 1)[0] + "/matrix"
    dsn = database_url.replace("+asyncpg", "")
    admin = await asyncpg.connect(postgres.url.replace("+asyncpg", ""))
    await admin.execute("CREATE DATABASE matrix")
    await admin.close()

    meta_port = _free_port()
    fake = ROOT / "tests" / "fake_meta.py"
    meta = _popen([str(fake), "--port", str(meta_port), "--token", TOKEN, "--chaos-seed", "14"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env |= {
        "WA_DATABASE_URL": database_url,
        "WA_REDIS_URL": redis.url,
        "WA_PROVIDER": "cloud",
        "WA_SECRET_KEYS": TEST_SECRET_KEY,
        "WA_GRAPH_API_BASE_URL": f"http://127.0.0.1:{meta_port}",
        "WA_ACCESS_TOKEN": TOKEN,
        "WA_PHONE_NUMBER_ID": "106540352242922",
        "WA_APP_SECRET": "app-secret",
        "WA_ADMIN_TOKEN": ADMIN_TOKEN,
        "WA_SEND_TIMEOUT_SECONDS": "3.5",  # above the fake's slowest spike (3 s)
        "WA_LEASE_SECONDS": "8",
        "WA_DISPATCH_CONCURRENCY": "32",
        "WA_DISPATCH_POLL_SECONDS": "0.2",
        "WA_RETRY_BASE_SECONDS": "0.2",
        "WA_RETRY_MAX_SECONDS": "2",
        "WA_MAX_ATTEMPTS": "12",
        # No status webhooks reach the replicas here: a timed-out send can only be resent, so
        # the reconciliation wait is kept short to drain in time.
        "WA_RECONCILE_SECONDS": "2",
        "WA_DATABASE_STATEMENT_TIMEOUT_SECONDS": "10",
        "WA_ALERT_ENABLED": "false",
        "WA_LOG_LEVEL": "WARNING",
    }
    _popen(["-m", "wa_outbound.cli", "migrate"], env=env).wait(timeout=60)
    replicas = [Replica(_free_port(), tmp_path / f"replica{i}.log") for i in range(REPLICAS)]

    def start(replica: Replica) -> None:
        command = ["-m", "wa_outbound.cli", "serve", "--no-migrate", "--port", str(replica.port)]
        replica.process = _popen(command, env=env, log=replica.log)

    db = await asyncpg.connect(dsn)
    try:
        for replica in replicas:
            start(replica)
        for replica in replicas:
            await _wait_http(f"http://127.0.0.1:{replica.port}/health/live")
        await _wait_http(f"http://127.0.0.1:{meta_port}/_fake/requests")
        setup_at = time.monotonic()
        main_phones = [f"+3367{i:07d}" for i in range(MESSAGES)]
        quota_phones = [f"+3368{i:07d}" for i in range(QUOTA_QUEUED)]
        base = f"http://127.0.0.1:{replicas[0].port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as api:
            main_key = await _org(api, db, "main", main_phones, limit=1_000_000)
            quota_key = await _org(api, db, "quota", quota_phones, limit=QUOTA_LIMIT)
            for start_at in range(0, MESSAGES, 1000):
                await _queue(api, main_key, main_phones[start_at : start_at + 1000])
            await _queue(api, quota_key, quota_phones)

        queued_at = time.monotonic()
        # Chaos: a replica killed every few seconds (and started again), Redis and PostgreSQL
        # restarted once each.
        in_flight_killed = 0
        started = time.monotonic()
        redis_restarted = postgres_restarted = False
        while time.monotonic() - started < CHAOS_S:
            await asyncio.sleep(KILL_EVERY_S)
            victim = rng.choice(replicas)
            assert victim.process is not None
            pid = victim.process.pid
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            victim.killed_pids.append(pid)
            in_flight_killed += await _claimed_by(db, pid)
            start(victim)
            elapsed = time.monotonic() - started
            if not redis_restarted and elapsed > CHAOS_S / 3:
                redis.stop()
                await asyncio.sleep(1)
                redis.start()
                redis_restarted = True
            elif not postgres_restarted and elapsed > 2 * CHAOS_S / 3:
                await db.close()
                postgres.stop()
                await asyncio.sleep(1)
                postgres.start()
                db = await asyncpg.connect(dsn)
                postgres_restarted = True
        assert redis_restarted
        assert postgres_restarted

        chaos_ended = time.monotonic()
        deadline = chaos_ended + 180
        while time.monotonic() < deadline:
            waiting = await db.fetchval(
                "SELECT count(*) FROM outbound_message m JOIN organization o ON o.id = m.org_id"
                " WHERE o.name = 'main' AND m.status NOT IN ('ACCEPTED', 'FAILED')"
            )
            if waiting == 0:
                break
            await asyncio.sleep(0.5)
        figures = await _figures(db, meta_port)
        figures["setup_ms"] = round((queued_at - setup_at) * 1000)
        figures["drain_ms"] = round((time.monotonic() - chaos_ended) * 1000)
    finally:
        await db.close()
        for replica in replicas:
            if replica.process is not None:
                replica.process.terminate()
        for replica in replicas:
            if replica.process is not None:
                replica.process.wait(timeout=30)
        meta.terminate()
        meta.wait(timeout=30)

    figures["in_flight_in_killed"] = in_flight_killed
    figures["kills"] = sum(len(r.killed_pids) for r in replicas)
    print("\nfault matrix:", figures)
    assert figures["main_not_final"] == 0, "every message reaches a final state"
    assert figures["main_messages"] == MESSAGES, "none lost"
    assert figures["backwards"] == 0, "no status moved backwards"
    invisible = figures["duplicates"] - figures["duplicates_on_timeline"]
    assert invisible <= in_flight_killed, "a duplicate not on a timeline died in flight"
    assert figures["quota_requests"] <= QUOTA_LIMIT, "the quota held"
    assert figures["quota_accepted"] <= QUOTA_LIMIT


async def _org(
    api: httpx.AsyncClient, db: asyncpg.Connection, name: str, phones: list[str], *, limit: int
) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    org = (await api.post("/v1/admin/orgs", json={"name": name}, headers=admin)).json()
    key = (
        await api.post(f"/v1/admin/orgs/{org['id']}/api-keys", json={"name": "k"}, headers=admin)
    ).json()
    quota = {"limit": limit, "window_seconds": 86_400, "messages_per_second": 1_000}
    response = await api.put(
        "/v1/rate-limits/whatsapp/quota", json=quota, headers=admin | {"X-Org-Id": org["id"]}
    )
    assert response.status_code == 200, response.text
    await db.executemany(
        "INSERT INTO consent (org_id, phone, status, source, granted_at, updated_at)"
        " VALUES ($1, $2, 'granted', 'matrix', now(), now())",
        [(org["id"], phone) for phone in phones],
    )
    return {"Authorization": f"Bearer {key['api_key']}"}


async def _queue(api: httpx.AsyncClient, key: dict[str, str], phones: list[str]) -> None:
    template = {"name": "order_update", "language": "en_US"}
    body = {"messages": [{"to": phone, "template": template} for phone in phones]}
    response = await api.post("/v1/messages/batch", json=body, headers=key)
    assert response.status_code < 300, response.text


async def _claimed_by(db: asyncpg.Connection, pid: int) -> int:
    """Messages a killed process had claimed and not settled: in flight when it died."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM outbound_message WHERE status = 'SENDING' AND claimed_by LIKE $1",
            f"%:{pid}:%",
        )
    )


async def _figures(db: asyncpg.Connection, meta_port: int) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        fake = (await client.get(f"http://127.0.0.1:{meta_port}/_fake/requests")).json()
    rows = await db.fetch(
        "SELECT o.name, m.status, count(*) AS n FROM outbound_message m"
        " JOIN organization o ON o.id = m.org_id GROUP BY o.name, m.status"
    )
    by = {(r["name"], r["status"]): int(r["n"]) for r in rows}
    # After ACCEPTED (or a dead-letter), nothing may take a message back to a waiting status.
    backwards = await db.fetchval(
        """
        SELECT count(*) FROM message_event later
        JOIN message_event settled ON settled.message_id = later.message_id
         AND settled.id < later.id
        WHERE settled.to_status IN ('ACCEPTED', 'SENT', 'DELIVERED', 'READ')
          AND later.to_status IN ('QUEUED', 'RETRYING', 'SENDING')
        """
    )
    on_timeline = await db.fetchval(
        "SELECT count(*) FROM message_event WHERE type = 'stale_outcome'"
        " AND details ? 'provider_message_id'"
    )
    quota_phones = [to for to in fake["by_to"] if to.startswith("3368")]
    return {
        "main_messages": sum(n for (name, _), n in by.items() if name == "main"),
        "main_accepted": by.get(("main", "ACCEPTED"), 0),
        "main_failed": by.get(("main", "FAILED"), 0),
        "main_not_final": sum(
            n
            for (name, status), n in by.items()
            if name == "main" and status not in ("ACCEPTED", "FAILED")
        ),
        "quota_accepted": by.get(("quota", "ACCEPTED"), 0),
        "quota_requests": sum(fake["by_to"][to] for to in quota_phones),
        "requests": fake["total"],
        "duplicates": sum(n - 1 for n in fake["duplicates"].values()),
        "duplicates_on_timeline": int(on_timeline),
        "backwards": int(backwards),
        "lease_expired": int(
            await db.fetchval("SELECT count(*) FROM message_event WHERE type = 'lease_expired'")
        ),
    }
