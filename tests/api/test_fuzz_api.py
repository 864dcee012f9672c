"""Schema fuzzing: schemathesis drives every operation of the app's own OpenAPI document against
the app served over loopback on PostgreSQL, with valid organisation and admin credentials.

No answer may be a 5xx, and every answer must be one the document declares, with the declared
body (the contract's error body for errors).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from conftest import _admin_execute, _sa_url
from helpers import ADMIN, make_settings
from wa_outbound.app import create_app
from wa_outbound.config import Settings

# CI-sized; WA_FUZZ_EXAMPLES=500 for a longer hunt.
EXAMPLES_PER_OPERATION = int(os.environ.get("WA_FUZZ_EXAMPLES", "30"))
# Operations called with the admin token; every other one with the organisation's key.
ADMIN_PATHS = ("/v1/admin/", "/v1/alerts")
ADMIN_OPERATIONS = {("PUT", "/v1/rate-limits/whatsapp/quota")}
# Left out, each for a reason of the API's design rather than a defect:
EXCLUDED_CHECKS = [
    # A schema-valid request may still break a business rule (no consent: 422; an id that
    # does not exist: 404), so valid data is not always accepted.
    checks.positive_data_acceptance,
    # Overlapping paths: DELETE /v1/dlq/report is DELETE /v1/dlq/{id} with a bad id (422).
    checks.unsupported_method,
    checks.allow_header_conformance,
]


@dataclass(frozen=True)
class Served:
    base_url: str
    org_id: str
    org_auth: dict[str, str]


def _app_settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        app_secret="fuzz-app-secret",
        webhook_verify_token="fuzz-verify-token",
    )


@pytest.fixture(scope="module")
def served(pg_template: str) -> Iterator[Served]:
    """The app with its lifespan, served by uvicorn in a thread on a fresh PostgreSQL database."""
    name = f"wa_fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    config = uvicorn.Config(
        create_app(_app_settings(_sa_url(name))),
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fuzz-uvicorn", daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base_url) as client:
            org = client.post("/v1/admin/orgs", json={"name": "Fuzz"}, headers=ADMIN).json()
            key = client.post(f"/v1/admin/orgs/{org['id']}/api-keys", json={}, headers=ADMIN)
        auth = {"Authorization": f"Bearer {key.json()['api_key']}"}
        yield Served(base_url, org["id"], auth)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _schema() -> schemathesis.schemas.BaseSchema:
    # The document is the app's own; building it needs no database.
    document = create_app(_app_settings("sqlite+aiosqlite:///:memory:")).openapi()
    loaded = schemathesis.openapi.from_dict(document).exclude(path="/metrics")
    # Unknown query parameters are ignored, as most HTTP APIs do; OpenAPI does not forbid them.
    # The credentials are the test's own (valid ones): schemathesis does not make them up.
    loaded.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    return loaded


schema = _schema()


def _credentials(case: schemathesis.Case[Any], served: Served) -> dict[str, str]:
    if case.path.startswith(ADMIN_PATHS) or (case.method, case.path) in ADMIN_OPERATIONS:
        return ADMIN
    return served.org_auth


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_with_a_server_error(
    case: schemathesis.Case[Any], served: Served
) -> None:
    case.call_and_validate(
        base_url=served.base_url,
        headers=_credentials(case, served),
        excluded_checks=EXCLUDED_CHECKS,
        timeout=30,
    )
