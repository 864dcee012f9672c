"""The console's test helpers: `wa-outbound serve` as its own process on PostgreSQL with the
sandbox provider (the dispatcher on, so replayed messages reach READ), signing in over HTTP,
and a dead-lettered message written straight into the service's database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from conftest import _admin_execute, _sa_url
from factories import engine_for, insert_message
from helpers import ADMIN, ADMIN_TOKEN, free_port
from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.db.types import utcnow

START_TIMEOUT_S = 60.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TEMPLATE_ERROR = ("132001", "Template name does not exist in the translation")


@dataclass(frozen=True)
class Service:
    base_url: str
    database_url: str
    log: Path


@contextlib.contextmanager
def console_service(pg_template: str, workdir: Path, **env_extra: str) -> Iterator[Service]:
    """The service on a database of its own, answering when the block starts; stopped and its
    database dropped when it ends. Plain http: WA_CONSOLE_ALLOW_INSECURE is on."""
    name = f"wa_console_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    database_url = _sa_url(name)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WA_")}
    env.update(
        {
            "WA_DATABASE_URL": database_url,
            "WA_ADMIN_TOKEN": ADMIN_TOKEN,
            "WA_PROVIDER": "sandbox",
            "WA_CONSOLE_ALLOW_INSECURE": "true",
            "WA_ALERT_ENABLED": "false",
            "WA_LOG_FORMAT": "text",
            "WA_LOG_LEVEL": "WARNING",
            **env_extra,
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


def _wait_until_live(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service stopped while starting:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the service did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


@dataclass(frozen=True)
class Org:
    id: str
    key: str
    key_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def new_org(client: httpx.AsyncClient, name: str = "Acme") -> Org:
    """An organisation and an API key, through the admin API."""
    response = await client.post("/v1/admin/orgs", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    org_id = response.json()["id"]
    response = await client.post(
        f"/v1/admin/orgs/{org_id}/api-keys", json={"name": "console"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Org(org_id, body["api_key"], body["id"])


async def dead_letter(
    database_url: str,
    org_id: str,
    *,
    to: str = "+33612345678",
    code: tuple[str, str] = TEMPLATE_ERROR,
) -> uuid.UUID:
    """A message that failed for good with `code` (Meta refused its template, say): FAILED and
    dead-lettered, as the dispatcher leaves it."""
    async with engine_for(database_url) as engine, engine.begin() as conn:
        return await insert_message(
            conn,
            org_id=org_id,
            status="FAILED",
            to=to,
            attempts=1,
            dead_lettered=True,
            error_code=code[0],
            error_title=code[1],
            error_message=f"(#{code[0]}) {code[1]}",
            error_retryable=False,
            failed_at=utcnow(),
            sender_id=SHARED_SENDER_ID,
        )


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Signs `client` in (its cookie jar keeps the session); the sign-in's answer."""
    form = await client.get("/console/sign-in")
    match = CSRF.search(form.text)
    assert match, form.text
    return await client.post("/console/sign-in", data={"csrf_token": match[1], "key": key})


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, html
    return match[1]
