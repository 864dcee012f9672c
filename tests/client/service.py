"""`wa-outbound serve` as its own process, on a fresh PostgreSQL database cloned from the
migrated template, for the client's tests: the sandbox sends, the dispatcher and the callback
worker run, and callbacks may go to loopback receivers (WA_CALLBACK_ALLOW_INSECURE)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson

import meta_payloads as meta
from conftest import _dsn
from helpers import TEST_SECRET_KEY
from service_process import served

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
    env = {
        "WA_SECRET_KEYS": TEST_SECRET_KEY,
        # The shared sender on the webhook payloads' number, so that an inbound message signed
        # with the app secret opens a service window for session messages.
        "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
        "WA_ACCESS_TOKEN": "client-tests-token",
        "WA_APP_SECRET": APP_SECRET,
        "WA_CALLBACK_ALLOW_INSECURE": "true",
    }
    with served(pg_template, workdir, prefix="wa_client", env=env) as process:
        yield Service(process.base_url, process.database_url, process.log)
