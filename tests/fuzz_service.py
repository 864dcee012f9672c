"""The service the fuzzers send their requests to: `wa-outbound serve` as its own process on a
fresh PostgreSQL database cloned from the migrated template, with the admin token and Meta's
webhook secrets. Its dispatcher is off, so the rows a fuzzer prepares keep their state until
a request changes them; its log goes to a file, whose server errors a fuzzer reports.

A fuzzer's figures go to the JSON file that `WA_FUZZ_REPORT` names, if set (`make fuzz`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import meta_payloads as meta
from conftest import _admin_execute, _sa_url
from helpers import ADMIN_TOKEN, free_port

APP_SECRET = "fuzz-app-secret"
VERIFY_TOKEN = "fuzz-verify-token"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Service:
    base_url: str
    database_url: str
    log: Path

    def errors(self) -> list[str]:
        """The ERROR lines (and their tracebacks) the service has logged."""
        lines = self.log.read_text(errors="replace").splitlines()
        found: list[str] = []
        for index, line in enumerate(lines):
            if " ERROR " in line or line.startswith("ERROR"):
                found.append("\n".join(lines[index : index + 40]))
        return found


@contextlib.contextmanager
def running_service(pg_template: str, workdir: Path) -> Iterator[Service]:
    """The service on a database of its own, answering when the block starts; stopped (SIGTERM)
    and its database dropped when it ends."""
    name = f"wa_fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    database_url = _sa_url(name)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WA_")}
    env.update(
        {
            "WA_DATABASE_URL": database_url,
            "WA_ADMIN_TOKEN": ADMIN_TOKEN,
            "WA_APP_SECRET": APP_SECRET,
            "WA_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "WA_PROVIDER": "sandbox",
            # The shared sender on the envelopes' number: their statuses route to its messages.
            "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
            "WA_ACCESS_TOKEN": "fuzz-token",
            "WA_DISPATCH_ENABLED": "false",
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


def record(section: str, **figures: Any) -> None:
    """Adds one fuzzer's figures to the report file, if there is one."""
    name = os.environ.get("WA_FUZZ_REPORT")
    if not name:
        return
    path = Path(name)
    report = json.loads(path.read_text()) if path.exists() else {}
    report[section] = figures
    path.write_text(json.dumps(report, indent=2) + "\n")
