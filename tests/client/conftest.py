"""The client's tests run against `wa-outbound serve` as a process of its own (sandbox provider,
PostgreSQL, dispatcher and callback worker on), one for the whole run; each test has an
organisation and an API key of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from wa_outbound_client import AsyncClient, Client, RetryPolicy

from client.service import Service, running_service
from helpers import ADMIN

# Short waits: the tests' retries are about what is repeated, not about how long they wait.
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="session")
def service(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(pg_template, tmp_path_factory.mktemp("service")) as running:
        yield running


@pytest.fixture
def api_key(service: Service) -> str:
    """The key of a fresh organisation, made through the admin API."""
    org_id = f"client-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=service.base_url, headers=ADMIN, timeout=10) as http:
        created = http.post("/v1/admin/orgs", json={"id": org_id, "name": org_id})
        assert created.status_code == 201, created.text
        key = http.post(f"/v1/admin/orgs/{org_id}/api-keys", json={"name": "client tests"})
        assert key.status_code == 201, key.text
    return str(key.json()["api_key"])


@pytest.fixture
def sync_client(service: Service, api_key: str) -> Iterator[Client]:
    with Client(service.base_url, api_key, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
async def async_client(service: Service, api_key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(service.base_url, api_key, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
