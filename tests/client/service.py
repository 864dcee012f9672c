"""`wa-outbound serve` as its own process, on a fresh PostgreSQL database cloned from the
migrated template, for the client's tests: the sandbox sends, the dispatcher and the callback
worker run, and callbacks may go to loopback receivers (WA_CALLBACK_ALLOW_INSECURE)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson

import meta_payloads as meta
from conftest import _admin_execute, _dsn, _sa_url
from fuzz_service import _wait_until_live
from helpers import ADMIN_TOKEN, TEST_SECRET_KEY, free_port

APP_SECRET = "client-tests-app-secret"


@dataclass(frozen=True)
class Service:
    base_url: str
    database_url: str
    log: Path

    def count(self, sql: str, *args: object) -> int:
        """One number read straight from the service's database; callable from sync and async
        tests alike (it runs its own loop in a thread)."""

        async def read() -> int:
            conn = await asyncpg.connect(_dsn(self.database_url), timeout=5)
            try:
                return int(await conn.fetchval(sql, *args))
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, read()).result()

    def inbound(self, phone: str, wamid: str) -> None:
        """A user's message to the shared number, as Meta's signed webhook brings it: it opens
        the user's service window with the organisations that know the number."""
        body = orjson.dumps(meta.envelope(value_extra=meta.inbound_text(phone, "hi", wamid=wamid)))
        answer = httpx.post(
            f"{self.base_url}/webhooks/whatsapp",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": meta.sign(body, APP_SECRET),
            },
        )
        assert answer.status_code == 200, answer.text


@contextlib.contextmanager
def running_service(pg_template: str, workdir: Path) -> Iterator[Service]:
    name = f"wa_client_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    database_url = _sa_url(name)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WA_")}
    env.update(
        {
            "WA_DATABASE_URL": database_url,
            "WA_ADMIN_TOKEN": ADMIN_TOKEN,
            "WA_PROVIDER": "sandbox",
            "WA_SECRET_KEYS": TEST_SECRET_KEY,
            # The shared sender on the webhook payloads' number, so that an inbound message
            # signed with the app secret opens a service window for session messages.
            "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
            "WA_ACCESS_TOKEN": "client-tests-token",
            "WA_APP_SECRET": APP_SECRET,
            "WA_CALLBACK_ALLOW_INSECURE": "true",
            "WA_ALERT_ENABLED": "false",
            "WA_LOG_FORMAT": "text",
            "WA_LOG_LEVEL": "WARNING",
        }
    )
    log = workdir / f"{name}.log"
    command = [str(Path(sys.executable).parent / "wa-outbound"), "serve", "--no-migrate"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_live(base_url, process, log)
        yield Service(base_url, database_url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
