"""Shared pieces of the benchmarks: databases, processes, machine facts, result files."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The server's maintenance database, where bench databases are created and dropped; either
# spelling (postgresql:// or postgresql+asyncpg://) is accepted.
# The template message every benchmark queues.
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
}
PG_ADMIN = os.environ.get(
    "WA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+asyncpg://", "postgresql://", 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_database(prefix: str = "wa_bench") -> tuple[str, str]:
    """Returns (asyncpg DSN, SQLAlchemy URL) of a new empty database."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    return dsn, dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env.update(
        {
            "WA_DATABASE_URL": database_url,
            "WA_LOG_LEVEL": "WARNING",
            "WA_ALERT_ENABLED": "false",
            "WA_LOG_FORMAT": "text",
            # cloud refuses to start without one; a fixed key, as the benchmarks' data is scratch.
            "WA_SECRET_KEYS": "YmVuY2gta2V5LW9mLXdhLW91dGJvdW5kLWJlbmNoMzI=",
            # The benchmarks send many messages to each of their recipients: pacing each pair
            # (one per 6 s) would measure the pacing, not the service.
            "WA_PAIR_INTERVAL_SECONDS": "0",
        }
    )
    env.update(extra)
    return env


# The shared sender's number, as `bench/fake_meta_ceiling.py`'s requests name it.
PHONE_NUMBER_ID = "106540352242922"


def cloud_env(
    database_url: str, meta_port: int, *, token: str, redis_url: str = "", **extra: str
) -> dict[str, str]:
    """`service_env` for a service sending from the shared sender to the fake Meta on
    `meta_port` (a closed port when the dispatcher is off), its limiter on `redis_url` if any."""
    settings = {
        "WA_PROVIDER": "cloud",
        "WA_GRAPH_API_BASE_URL": f"http://127.0.0.1:{meta_port}",
        "WA_ACCESS_TOKEN": token,
        "WA_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WA_APP_SECRET": "bench",
        **({"WA_REDIS_URL": redis_url} if redis_url else {}),
    }
    return service_env(database_url, **{**settings, **extra})


def start_fake_meta(port: int, *args: str, token: str) -> subprocess.Popen[bytes]:
    """`tests/fake_meta.py` on `port` as its own process, taking `token` (and `args`)."""
    fake_meta = str(ROOT / "tests" / "fake_meta.py")
    return start([sys.executable, fake_meta, "--port", str(port), "--token", token, *args])


SHARED_SENDER_ID = uuid.UUID(int=0)
UNLIMITED = 1_000_000.0


async def insert_senders(dsn: str, org_id: str, count: int, *, token: str) -> list[uuid.UUID]:
    """The shared sender's row and `count` senders of the org taking `token`, none of them
    limiting."""
    now = datetime.now(UTC)
    rows = [(SHARED_SENDER_ID, None, PHONE_NUMBER_ID, None, False)]
    rows += [(uuid.uuid4(), org_id, f"2{i:014d}", f"waba-{i}", i == 0) for i in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO sender (id, org_id, name, phone_number_id, waba_id, is_default, "
            "messages_per_second, access_token, token_last4, paused_reasons, created_at, "
            "updated_at) VALUES ($1, $2, 'bench', $3, $4, $5, $6, $7, 'oken', '[]', $8, $8)",
            [
                (
                    id_,
                    org,
                    number,
                    waba,
                    default,
                    UNLIMITED,
                    None if org is None else f"plain:{token}",
                    now,
                )
                for id_, org, number, waba, default in rows
            ],
        )
    finally:
        await conn.close()
    return [row[0] for row in rows[1:]] or [SHARED_SENDER_ID]


def migrate(env: dict[str, str]) -> None:
    subprocess.run([str(BIN / "wa-outbound"), "migrate"], env=env, check=True, capture_output=True)


def start(
    cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def serve(env: dict[str, str], port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`wa-outbound serve` as its own process, answering when this returns."""
    process = start(
        [str(BIN / "wa-outbound"), "serve", "--no-migrate", "--port", str(port)], env, log=log
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/live")
    except RuntimeError:
        stop(process)
        raise
    return process


async def prepare_org(dsn: str, env: dict[str, str], phones: list[str]) -> tuple[str, str]:
    """An organisation (through the CLI) with no effective limits and consent for `phones`;
    returns (org id, API key)."""
    created = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "wa-outbound"), "orgs", "create", "Bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    org = json.loads(created.stdout)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE rate_limit SET quota_limit = 1000000000, messages_per_second = 1000000"
        )
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "consent",
            columns=["org_id", "phone", "status", "source", "granted_at", "updated_at"],
            records=[(org["org_id"], p, "granted", "bench", now, now) for p in phones],
        )
    finally:
        await conn.close()
    return org["org_id"], org["api_key"]


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), to tell its cost from the noise."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in (
        "wa-outbound",
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "sqlalchemy",
        "asyncpg",
        "aiohttp",
        "redis",
        "uvloop",
        "httptools",
        "orjson",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["postgresql"] = _server_version(["psql", "--version"])
    versions["redis-server"] = _server_version(["redis-server", "--version"])
    versions["wrk"] = _server_version(["wrk", "--version"])
    return {
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _server_version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else None


def write_results(name: str, results: dict[str, Any]) -> Path:
    path = ROOT / "bench" / f"results-{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    return path


def table(rows: list[tuple[str, Any, str]]) -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = []
    for name, value, target in rows:
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        lines.append(f"{name:<{width}}  {shown:>14}  {target}")
    return "\n".join(lines)
