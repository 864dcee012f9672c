"""The command line, run as real processes from a directory other than the repository."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from helpers import TEST_SECRET_KEY
from wa_outbound.db import migrate as migrations

CLI = [sys.executable, "-m", "wa_outbound.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env.update({"WA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", **extra})
    return env


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def test_migrate_and_create_org_from_any_directory(tmp_path: Path) -> None:
    env = _env(tmp_path)
    migrate = subprocess.run(
        [*CLI, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr
    created = subprocess.run(
        [*CLI, "orgs", "create", "Acme"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    output = json.loads(created.stdout)
    assert output["org_id"].startswith("org_")
    assert output["api_key"].startswith("wao_")


def test_invalid_configuration_stops_with_the_variable_name(tmp_path: Path) -> None:
    env = _env(tmp_path, WA_MAX_ATTEMPTS="many")
    result = subprocess.run(
        [*CLI, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "WA_MAX_ATTEMPTS" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_sandbox_creates_demo_org_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path, WA_LOG_FORMAT="text")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        key = None
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.strip().startswith("wao_"):
                key = line.strip()
            if "Uvicorn running" in line:
                break
        assert key is not None, "the demo key is printed on first start"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/health/ready").status_code == 200
            listing = client.get("/v1/messages", headers={"Authorization": f"Bearer {key}"})
            assert listing.status_code == 200
            assert client.get("/openapi.json").json()["info"]["title"] == "wa-outbound"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_postgresql_without_a_provider_is_refused_with_a_message_saying_so(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, WA_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    result = subprocess.run(
        [*CLI, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "WA_PROVIDER=sandbox" in result.stderr
    assert "WA_PROVIDER=cloud" in result.stderr
    assert "Traceback" not in result.stderr


async def test_two_processes_migrating_one_fresh_database_at_once_both_succeed(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = _env(tmp_path, WA_DATABASE_URL=empty_postgres_url, WA_PROVIDER="sandbox")
    processes = [
        await asyncio.create_subprocess_exec(
            *CLI,
            "migrate",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    async with asyncio.timeout(120):
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
    assert [process.returncode for process in processes] == [0, 0], outputs
    conn = await asyncpg.connect(_dsn(empty_postgres_url), timeout=5)
    try:
        versions = [row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()
    assert versions == [migrations.head()]


@pytest.mark.parametrize("provider", ["cloud", "sandbox"])
async def test_serve_on_postgresql_prints_no_demo_key(
    tmp_path: Path, postgres_url: str, provider: str
) -> None:
    """The demo organisation and its key are for `make run` only (the sandbox on SQLite)."""
    port = _free_port()
    env = _env(
        tmp_path,
        WA_DATABASE_URL=postgres_url,
        WA_PROVIDER=provider,
        WA_SECRET_KEYS=TEST_SECRET_KEY,
        WA_LOG_FORMAT="text",
        WA_PHONE_NUMBER_ID="1234",
        WA_ACCESS_TOKEN="token",
        WA_APP_SECRET="secret",
        WA_GRAPH_API_BASE_URL="http://127.0.0.1:1",
    )
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "serve",
        "--no-migrate",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            while line := (await process.stdout.readline()).decode():
                lines.append(line)
                if "Uvicorn running" in line:
                    break
        assert any("Uvicorn running" in line for line in lines), lines
    finally:
        process.terminate()
        async with asyncio.timeout(15):
            await process.wait()
    assert not any("wao_" in line or "demo" in line for line in lines), lines
    conn = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        assert await conn.fetchval("SELECT count(*) FROM organization") == 0
    finally:
        await conn.close()


def test_openapi_prints_the_committed_document_whatever_the_environment(tmp_path: Path) -> None:
    # Settings that would stop `serve` (cloud without credentials, a bad number) change nothing:
    # the document depends on no setting.
    env = _env(tmp_path, WA_PROVIDER="cloud", WA_MAX_ATTEMPTS="many")
    committed = (Path(__file__).resolve().parents[1] / "openapi.json").read_text(encoding="utf-8")
    printed = subprocess.run(
        [*CLI, "openapi"], cwd=tmp_path, env=env, capture_output=True, encoding="utf-8", timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == committed
    written = subprocess.run(
        [*CLI, "openapi", "--output", "doc.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "doc.json").read_text(encoding="utf-8") == committed
