"""The console's test helpers: `wa-outbound serve` as its own process on PostgreSQL with the
sandbox provider (the dispatcher on, so replayed messages reach READ), signing in over HTTP,
and a dead-lettered message written straight into the service's database."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from factories import engine_for, insert_message
from helpers import ADMIN
from service_process import served
from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.db.types import utcnow

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TEMPLATE_ERROR = ("132001", "Template name does not exist in the translation")


@dataclass(frozen=True)
class Service:
    base_url: str
    database_url: str
    log: Path


@contextlib.contextmanager
def console_service(pg_template: str, workdir: Path, **env_extra: str) -> Iterator[Service]:
    """The service over plain http (WA_CONSOLE_ALLOW_INSECURE on), its dispatcher sending."""
    env = {"WA_CONSOLE_ALLOW_INSECURE": "true", **env_extra}
    with served(pg_template, workdir, prefix="wa_console", env=env) as process:
        yield Service(process.base_url, process.database_url, process.log)


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
