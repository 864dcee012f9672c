"""Cold start against a server whose listen queue is short: two fresh replicas share 1,000 messages
(two batch calls of 500), lease 5 s, send timeout 2 s, and a fake Meta that answers at once but
listens with a backlog of `--backlog` (4 by default, as a small proxy or a busy server in front of
Meta would). Counts what reached the fake twice, claims, and how long the queue took to drain.

    .venv/bin/python bench/cold_start.py [--runs 3] [--backlog 4]

With a short backlog, a burst of connection attempts overflows the queue: the server drops the
handshakes it cannot queue, the kernel retries them only after 1, 3 and 7 seconds, and sends whose
request got through after the client gave up become duplicates (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import asyncpg
import httpx

from _support import (
    TEMPLATE,
    cloud_env,
    create_database,
    drop_database,
    free_port,
    migrate,
    prepare_org,
    serve,
    start_fake_meta,
    stop,
    wait_http,
)

TOKEN = "bench-token"
MESSAGES = 1_000


async def one_run(backlog: int) -> dict[str, float]:
    dsn, url = await create_database("wa_cold")
    meta_port = free_port()
    fake = start_fake_meta(meta_port, "--backlog", str(backlog), token=TOKEN)
    env = cloud_env(
        url,
        meta_port,
        token=TOKEN,
        WA_APP_SECRET="bench-secret",
        WA_LEASE_SECONDS="5",
        WA_SEND_TIMEOUT_SECONDS="2",
        WA_DISPATCH_ENABLED="false",
    )
    replicas = []
    try:
        wait_http(f"http://127.0.0.1:{meta_port}/_fake/requests")
        migrate(env)
        phones = [f"+3369{i:07d}" for i in range(MESSAGES)]
        _, key = await prepare_org(dsn, env, phones)
        env["WA_DISPATCH_ENABLED"] = "true"
        ports = [free_port(), free_port()]
        replicas = [serve(env, port) for port in ports]
        headers = {"Authorization": f"Bearer {key}"}
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=60) as api:
            for half in (phones[: MESSAGES // 2], phones[MESSAGES // 2 :]):
                body = {"messages": [{"to": phone, "template": TEMPLATE} for phone in half]}
                response = await api.post("/v1/messages/batch", json=body, headers=headers)
                response.raise_for_status()
        conn = await asyncpg.connect(dsn)
        try:
            while time.monotonic() - started < 120:
                accepted = await conn.fetchval(
                    "SELECT count(*) FROM outbound_message WHERE status = 'ACCEPTED'"
                )
                if accepted >= MESSAGES:
                    break
                await asyncio.sleep(0.05)
            drained_s = time.monotonic() - started
            types = Counter(
                row["type"]
                for row in await conn.fetch("SELECT type FROM message_event WHERE type <> 'queued'")
            )
        finally:
            await conn.close()
        async with httpx.AsyncClient() as client:
            report = (await client.get(f"http://127.0.0.1:{meta_port}/_fake/requests")).json()
    finally:
        for process in replicas:
            stop(process)
        stop(fake)
        await drop_database(dsn)
    return {
        "drained_s": round(drained_s, 2),
        "claims": types["claimed"],
        "retries": types["retry_scheduled"],
        "requests": report["total"],
        "duplicates": sum(n - 1 for n in report["duplicates"].values()),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=4)
    args = parser.parse_args()
    for _ in range(args.runs):
        print(await one_run(args.backlog), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
