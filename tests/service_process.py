"""`wa-outbound serve` as a process of its own for the tests that need a real server (the
fuzzers, the console's browser tests, the client's tests): on a fresh PostgreSQL database
cloned from the migrated template, with a log file, answering when the block starts; stopped
(SIGTERM) and its database dropped when it ends. Each caller says what it turns on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from conftest import _admin_execute, _sa_url
from helpers import ADMIN_TOKEN, free_port

START_TIMEOUT_S = 60.0
# What every served process has: the sandbox, no alerts, the admin token, text logs.
BASE_ENV = {
    "WA_ADMIN_TOKEN": ADMIN_TOKEN,
    "WA_PROVIDER": "sandbox",
    "WA_ALERT_ENABLED": "false",
    "WA_LOG_FORMAT": "text",
    "WA_LOG_LEVEL": "WARNING",
    # The tests read a webhook's effects right after its 200 (tests/webhooks/test_group_commit.py
    # serves the default, which answers once the body is committed).
    "WA_WEBHOOK_ANSWER_AFTER": "applied",
}


@dataclass(frozen=True)
class Process:
    base_url: str
    database_url: str
    log: Path
    pid: int = 0  # for the tests that kill it (kill -9)


@contextlib.contextmanager
def served(
    pg_template: str, workdir: Path, *, prefix: str, env: Mapping[str, str]
) -> Iterator[Process]:
    """The service with BASE_ENV and `env` (no other WA_ variable of this environment), on a
    database named after `prefix`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    database_url = _sa_url(name)
    port = free_port()
    variables = {key: value for key, value in os.environ.items() if not key.startswith("WA_")}
    variables |= BASE_ENV | {"WA_DATABASE_URL": database_url, **env}
    log = workdir / f"{name}.log"
    command = [str(Path(sys.executable).parent / "wa-outbound"), "serve", "--no-migrate"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=variables,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_live(base_url, process, log)
        yield Process(base_url, database_url, log, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_until_live(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service stopped while starting:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the service did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")
