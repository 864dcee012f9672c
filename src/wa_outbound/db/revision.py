"""Whether the database's schema is the one this code was written for.

A replica started with `serve --no-migrate` against a database that was not migrated yet would
fail every statement that touches a new column; the dispatcher would turn those failures into
retries and dead letters. So the composition root reads the schema's revision at start-up and
starts the dispatcher only once the schema is usable; `/health/ready` shows the revisions and
answers 503 meanwhile. A schema *newer* than the code (another replica, already upgraded,
migrated it during a rolling deploy) is usable: migrations keep the previous release working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db import migrate

log = logging.getLogger(__name__)

SchemaState = Literal["current", "behind", "ahead", "unknown"]
CHECK_TIMEOUT_S = 5.0
RECHECK_S = 2.0


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """`unknown`: the revision could not be read (the database did not answer)."""

    state: SchemaState
    database_revision: str | None
    code_revision: str
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.state in ("current", "ahead")

    def describe(self) -> dict[str, Any]:
        """The readiness component."""
        body: dict[str, Any] = {
            "status": self.state,
            "database_revision": self.database_revision,
            "code_revision": self.code_revision,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


async def read_status(engine: AsyncEngine) -> SchemaStatus:
    code = migrate.head()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            database = await migrate.current(engine)
    except Exception as exc:  # any failure to read means we do not know yet
        return SchemaStatus("unknown", None, code, error=type(exc).__name__)
    if database == code:
        return SchemaStatus("current", database, code)
    known = {script.revision for script in migrate.scripts().walk_revisions()}
    # An empty database (no revision) or an older revision of ours: behind. A revision we do
    # not know was written by newer code.
    state: SchemaState = "behind" if database is None or database in known else "ahead"
    return SchemaStatus(state, database, code)


class SchemaWatch:
    """Holds the schema's status; `on_usable` is called once, when it first is usable.

    The composition root awaits `run_once()` at start-up; if the schema is not usable yet, the
    watch runs as a worker and reads it again every RECHECK_S (a migration job may be running
    beside this replica), then idles until stopped."""

    def __init__(
        self, engine: AsyncEngine, *, on_usable: Callable[[], None], recheck_s: float = RECHECK_S
    ) -> None:
        self._engine = engine
        self._on_usable = on_usable
        self._recheck_s = recheck_s
        self._stopping = asyncio.Event()
        self._checks = 0
        self.status = SchemaStatus("unknown", None, migrate.head())

    async def run_once(self) -> SchemaStatus:
        if self.status.usable:
            return self.status
        previous = self.status
        self.status = await read_status(self._engine)
        self._checks += 1
        fields = self.status.describe()
        if self.status.usable:
            if self.status.state == "ahead":
                log.warning("the database schema is newer than this code", extra=fields)
            if previous.state != "unknown":
                log.warning("the database schema is usable now", extra=fields)
            self._on_usable()
        elif self.status.state == "behind" and previous.state != "behind":
            log.error(
                "the database schema is behind this code: not dispatching and not ready until "
                "it is migrated (wa-outbound migrate)",
                extra=fields,
            )
        elif self.status.state == "unknown" and self._checks == 1:
            log.warning(
                "the database schema's revision could not be read: not dispatching until it is",
                extra=fields,
            )
        return self.status

    async def run(self) -> None:
        while not self._stopping.is_set():
            if not self.status.usable:
                await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._recheck_s)

    async def stop(self) -> None:
        self._stopping.set()
