"""Where a benchmark's CPU goes: the seconds each of its parts used between two readings, as
cores kept busy. On a machine of two cores the service shares them with its database, the fake
Meta and the load generator; their shares tell what bounds a figure."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from _support import cpu_seconds


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, of its children running now, and of those it has reaped (a PostgreSQL
    postmaster's backends: each connection's process ends with it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(child[1]) == pid:
            total += cpu_seconds(int(stat.parent.name))
    return total


async def postgres_cpu(conn: asyncpg.Connection) -> Callable[[], float]:
    """A reading of the CPU seconds of the server `conn` is connected to (every backend's: on a
    shared server, other clients' too) when it runs on this machine; else always 0."""
    try:
        pid = int((await conn.fetchval("SELECT pg_read_file('postmaster.pid')")).split()[0])
        tree_cpu_seconds(pid)
    except (asyncpg.PostgresError, OSError, ValueError):
        return lambda: 0.0
    return lambda: tree_cpu_seconds(pid)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


class CpuShares:
    """`parts`: name → a reading of its CPU seconds so far."""

    def __init__(self, parts: dict[str, Callable[[], float]]) -> None:
        self._parts = parts
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    def start(self) -> None:
        self._start = {name: read() for name, read in self._parts.items()}
        self._started_at = time.monotonic()

    def cores(self) -> dict[str, float]:
        """Each part's CPU seconds since `start()` per second elapsed."""
        elapsed = time.monotonic() - self._started_at
        return {name: (read() - self._start[name]) / elapsed for name, read in self._parts.items()}


def soak_parts(services: list[int], fake_meta: int, postgres_data: Path | None) -> CpuShares:
    """The soak's parts: its services, its private PostgreSQL cluster (when it has one), the
    fake Meta, and this process (the load generator and the soak's polls)."""
    parts: dict[str, Callable[[], float]] = {
        "service": lambda: sum(cpu_seconds(pid) for pid in services)
    }
    if postgres_data is not None:
        parts["postgres"] = functools.partial(tree_cpu_seconds, postmaster_pid(postgres_data))
    parts["fake_meta"] = functools.partial(cpu_seconds, fake_meta)
    parts["load_generator"] = time.process_time
    return CpuShares(parts)
