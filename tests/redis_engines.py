"""Redis Cluster and Sentinel groups of the tests' own (Debian's redis-server, redis-cli and
redis-sentinel), on fixed private ports in a temporary directory, nothing kept on disk but the
cluster's node files. Servers are started and stopped by pid; a test may kill, stop and restart
one (a failover) and finds its state afterwards through `master_of`. `Server` is also the
process of `helpers.PrivateRedis`, a single server of one test's own on a free port."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.crc import key_slot

# Private ports of these tests (7100-7199): the cluster's six nodes, then the Sentinel group.
CLUSTER_PORTS = tuple(range(7100, 7106))
SENTINEL_MASTER_PORT, SENTINEL_REPLICA_PORT = 7110, 7111
SENTINEL_PORTS = (7120, 7121, 7122)
SENTINEL_NAME = "wa-outbound"
# A master not heard from for this long is failed over (cluster-node-timeout and Sentinel's
# down-after-milliseconds): short, so a test's failover takes a few seconds.
NODE_TIMEOUT_MS = 1000


def answers(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn,
    ):
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")
    return False


def wait_for(check: object, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def client(port: int) -> Redis:
    return Redis(port=port, socket_timeout=2, socket_connect_timeout=2)


class Server:
    """One redis-server (or sentinel) process with its arguments, restartable."""

    def __init__(self, port: int, args: list[str], workdir: Path) -> None:
        self.port = port
        self.args = args
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115  # the child keeps it
        self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=self.workdir)
        log.close()
        wait_for(lambda: answers(self.port), f"port {self.port} to answer", 10)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, losing what it had not replicated."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


def redis_args(port: int, *extra: str) -> list[str]:
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
        *extra,
    ]


class Cluster:
    """Three masters and three replicas (`redis-cli --cluster create --cluster-replicas 1`)."""

    def __init__(self, workdir: Path) -> None:
        self.servers = {
            port: Server(
                port,
                redis_args(
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    # Any replica may be promoted, however long its link was down.
                    "--cluster-replica-validity-factor",
                    "0",
                ),
                workdir / str(port),
            )
            for port in CLUSTER_PORTS
        }
        self.url = f"redis://127.0.0.1:{CLUSTER_PORTS[0]}/0"

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in CLUSTER_PORTS),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Every node sees the cluster ok, and each of the three masters has its replica."""

        def healthy() -> bool:
            try:
                masters = 0
                for port, server in self.servers.items():
                    if server.process is None:
                        return False
                    with client(port) as node:
                        if node.cluster("INFO")["cluster_state"] != "ok":
                            return False
                        info = node.info("replication")
                        if info["role"] == "master" and info.get("connected_slaves", 0) >= 1:
                            masters += 1
                        if info["role"] == "slave" and info["master_link_status"] != "up":
                            return False
                return masters == 3
            except Exception:  # a node still starting, or restarted meanwhile
                return False

        wait_for(healthy, "the cluster to be healthy", timeout_s)

    def master_port(self, key: str) -> int | None:
        """The master of the slot `key` is in, as a live node sees it now."""
        slot = key_slot(key.encode())
        for port, server in self.servers.items():
            if server.process is None:
                continue
            with contextlib.suppress(Exception), client(port) as node:
                for first, last, owner, *_ in node.execute_command("CLUSTER SLOTS"):
                    if first <= slot <= last:
                        return int(owner[1])
        return None

    def master_of(self, key: str) -> tuple[int, int]:
        """(master port, replica port) of the slot `key` is in, as the cluster sees it now."""
        slot = key_slot(key.encode())
        master = self.master_port(key)
        for port, server in self.servers.items():
            if server.process is None or master is None:
                continue
            with contextlib.suppress(Exception), client(port) as node:
                info = node.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == master:
                    return master, port
        raise RuntimeError(f"no master with a replica found for slot {slot}")

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


class SentinelGroup:
    """A master, its replica and three sentinels (quorum 2) watching them."""

    def __init__(self, workdir: Path) -> None:
        self.servers = {
            SENTINEL_MASTER_PORT: Server(
                SENTINEL_MASTER_PORT, redis_args(SENTINEL_MASTER_PORT), workdir / "master"
            ),
            SENTINEL_REPLICA_PORT: Server(
                SENTINEL_REPLICA_PORT,
                redis_args(
                    SENTINEL_REPLICA_PORT, "--replicaof", "127.0.0.1", str(SENTINEL_MASTER_PORT)
                ),
                workdir / "replica",
            ),
        }
        self.sentinels = []
        for port in SENTINEL_PORTS:
            directory = workdir / f"sentinel-{port}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SENTINEL_NAME} 127.0.0.1 {SENTINEL_MASTER_PORT} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_NAME} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {SENTINEL_NAME} 5000\n"
                f"sentinel parallel-syncs {SENTINEL_NAME} 1\n"
            )
            self.sentinels.append(Server(port, ["redis-sentinel", str(conf)], directory))
        self.addresses = ",".join(f"127.0.0.1:{port}" for port in SENTINEL_PORTS)

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_healthy()

    def master_port(self, key: str = "") -> int:
        """The master the sentinels name now."""
        with client(SENTINEL_PORTS[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(SENTINEL_NAME)
        return int(port)

    def master_of(self, key: str = "") -> tuple[int, int]:
        """(master port, replica port) as the sentinels see them now."""
        master = self.master_port()
        (replica,) = [p for p in self.servers if p != master]
        return master, replica

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """The sentinels agree on a master that has its replica connected."""

        def healthy() -> bool:
            try:
                seen = set()
                for sentinel_server in self.sentinels:
                    with client(sentinel_server.port) as sentinel:
                        seen.add(int(sentinel.sentinel_get_master_addr_by_name(SENTINEL_NAME)[1]))
                        state = sentinel.sentinel_master(SENTINEL_NAME)
                        if int(state["num-other-sentinels"]) < 2:
                            return False
                if len(seen) != 1:
                    return False
                (master,) = seen
                with client(master) as node:
                    info = node.info("replication")
                return bool(info["role"] == "master" and info.get("connected_slaves", 0) >= 1)
            except Exception:
                return False

        wait_for(healthy, "the sentinel group to be healthy", timeout_s)

    def stop(self) -> None:
        for server in [*self.sentinels, *self.servers.values()]:
            server.stop()


Engines = Cluster | SentinelGroup


def cut_replication(engines: Engines, key: str) -> tuple[int, int]:
    """Freeze the replica of `key`'s master and close the master's link to it: what the master
    writes from now on reaches no replica (as when a master dies with writes not yet sent).
    Returns (master port, replica port)."""
    master, replica = engines.master_of(key)
    engines.servers[replica].pause()
    with client(master) as node:
        node.execute_command("CLIENT KILL TYPE replica")
    return master, replica


def fail_over(engines: Engines, key: str, master: int, replica: int) -> dict[str, float]:
    """SIGKILL `key`'s master, let its (frozen) replica go on, wait for the replica to be
    promoted, then start the killed master again (it comes back as the replica) and wait for
    the group to be whole. Returns when each happened (monotonic seconds)."""
    engines.servers[master].kill()
    killed = time.monotonic()
    engines.servers[replica].resume()

    def promoted() -> bool:
        with contextlib.suppress(Exception):
            return engines.master_port(key) == replica
        return False

    wait_for(promoted, f"the replica {replica} to be promoted", 30)
    promoted_at = time.monotonic()
    engines.servers[master].start()
    engines.wait_healthy()
    return {"killed": killed, "promoted": promoted_at, "whole": time.monotonic()}
