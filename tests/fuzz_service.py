"""The service the fuzzers send their requests to: `wa-outbound serve` as its own process on a
fresh PostgreSQL database cloned from the migrated template, with the admin token and Meta's
webhook secrets. Its dispatcher is off, so the rows a fuzzer prepares keep their state until
a request changes them; its log goes to a file, whose server errors a fuzzer reports.

A fuzzer's figures go to the JSON file that `WA_FUZZ_REPORT` names, if set (`make fuzz`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import meta_payloads as meta
from service_process import served

APP_SECRET = "fuzz-app-secret"
VERIFY_TOKEN = "fuzz-verify-token"


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
    """The service with Meta's webhook secrets and the shared sender on the envelopes' number
    (their statuses route to its messages), its dispatcher off."""
    env = {
        "WA_APP_SECRET": APP_SECRET,
        "WA_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
        "WA_PHONE_NUMBER_ID": meta.PHONE_NUMBER_ID,
        "WA_ACCESS_TOKEN": "fuzz-token",
        "WA_DISPATCH_ENABLED": "false",
    }
    with served(pg_template, workdir, prefix="wa_fuzz", env=env) as process:
        yield Service(process.base_url, process.database_url, process.log)


def record(section: str, **figures: Any) -> None:
    """Adds one fuzzer's figures to the report file, if there is one."""
    name = os.environ.get("WA_FUZZ_REPORT")
    if not name:
        return
    path = Path(name)
    report = json.loads(path.read_text()) if path.exists() else {}
    report[section] = figures
    path.write_text(json.dumps(report, indent=2) + "\n")
