"""A PostgreSQL cluster of the test's own: initdb into a temporary directory, its own port, and
pg_ctl to start and stop it. Never the machine's shared server: stopping this one is the point.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]  # the newest installed major version
    on_path = shutil.which(name)
    if on_path is None:
        raise FileNotFoundError(f"{name} not found under /usr/lib/postgresql/*/bin or on PATH")
    return on_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivatePostgres:
    """`start()`, `stop()` (fast: open connections are cut, as in a failover), `start()` again,
    and `destroy()` at the end. `url` is the SQLAlchemy URL of its `postgres` database."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable  # False: no fsync, for tests that do not survive a power cut
        self.port = _free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="wa-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"
        )

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as_postgres, *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
