"""A PostgreSQL that hangs (every process of the cluster stopped with SIGSTOP: connections stay
open, nothing answers), unlike a stopped one that refuses connections at once.

While it hangs, requests that need the database answer 503 with the error body once the
statement timeout passes (never a 500, never a hang), and readiness is 503; when it answers
again, the same app serves again without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from helpers import TEMPLATE, app_client, create_org_with_key, eventually, grant, make_settings
from private_postgres import PrivatePostgres
from wa_outbound.app import create_app
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine

pytestmark = pytest.mark.slow

STATEMENT_TIMEOUT_S = 2.0
# Longer than any timeout of the service's own (statement 2 s, connect 5 s, pool wait 10 s):
# an answer slower than this is a hang, and the test fails rather than waits.
HANG_S = 20.0
PHONE = "+33612340001"


def _cluster_pids(pg: PrivatePostgres) -> list[int]:
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *map(int, children)]


@contextmanager
def hung(pg: PrivatePostgres) -> Iterator[None]:
    pids = _cluster_pids(pg)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def enqueue(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    async with asyncio.timeout(HANG_S):
        return await client.post(
            "/v1/messages", json={"to": PHONE, "template": TEMPLATE}, headers=auth
        )


# Key cached: the enqueue statement itself hangs; not cached: the key's lookup hangs first.
@pytest.mark.parametrize("key_cache_s", [60.0, 0.0], ids=["key-cached", "key-looked-up"])
async def test_a_hung_database_answers_503_in_time_and_the_service_recovers(
    private_postgres: PrivatePostgres, key_cache_s: float
) -> None:
    settings = make_settings(
        private_postgres.url,
        database_statement_timeout_seconds=STATEMENT_TIMEOUT_S,
        api_key_cache_seconds=key_cache_s,
        dispatch_enabled=True,  # its loops, and every other one, must outlive the hang
    )
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    async with app_client(create_app(settings)) as client:
        _, auth = await create_org_with_key(client)
        await grant(client, auth, PHONE)
        assert (await enqueue(client, auth)).status_code == 202

        with hung(private_postgres):
            during = await enqueue(client, auth)
            async with asyncio.timeout(HANG_S):
                ready = await client.get("/health/ready")

        assert during.status_code == 503, during.text
        assert during.json()["error"]["code"] == "service_unavailable"
        assert ready.status_code == 503

        async def serving() -> bool:
            return (await enqueue(client, auth)).status_code == 202

        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(serving, timeout_s=HANG_S)
        await eventually(ready_again, timeout_s=HANG_S)
        listed = await client.get("/v1/messages", headers=auth)
        assert listed.status_code == 200
        assert len(listed.json()["items"]) >= 2
