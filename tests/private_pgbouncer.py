"""A PgBouncer of the test's own (Debian's `pgbouncer`), in transaction mode, in front of the
machine's PostgreSQL: a temporary directory, its own port, started and stopped by the test.

Every database name is passed through (`* =`), so a test reaches its fresh database through
it by changing the URL's port. PgBouncer refuses to run as root: as root it runs as the
`postgres` OS user, which then owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BINARY = "/usr/sbin/pgbouncer"
# The ports this project's helpers keep for engines they start (free ones are picked).
PORTS = range(7200, 7300)


def binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed."""
    if os.access(BINARY, os.X_OK):
        return BINARY
    return shutil.which("pgbouncer")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


class PrivatePgBouncer:
    """`start()` and `stop()`; `url(direct)` is `direct`'s URL through this PgBouncer."""

    def __init__(
        self, *, server_port: int = 5432, pool_size: int = 5, max_client_conn: int = 1000
    ) -> None:
        path = binary()
        if path is None:
            raise FileNotFoundError("pgbouncer is not installed (apt-get install pgbouncer)")
        self._binary = path
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wa-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        run_as = "user = postgres\n" if os.geteuid() == 0 else ""
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "reserve_pool_size = 0\n"
            "admin_users = postgres\n"
            f"max_client_conn = {max_client_conn}\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
            f"{run_as}"
        )
        if run_as:
            owner = pwd.getpwnam("postgres")
            for path_ in (self.root, *self.root.iterdir()):
                os.chown(path_, owner.pw_uid, owner.pw_gid)
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, direct: str) -> str:
        """`direct` (a SQLAlchemy URL to 127.0.0.1) with this PgBouncer's port instead."""
        parts = urlsplit(direct)
        netloc = f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self._binary, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer stopped while starting:\n{self.log_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen within 10 s:\n{self.log_text()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown: clients are cut
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
