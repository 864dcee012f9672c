"""`bench/dispatch.py --pgbouncer`: dispatch runs straight to PostgreSQL and through a PgBouncer
in transaction mode (tests/private_pgbouncer.py, Debian's `pgbouncer`, its own temporary
directory and port) alternate, and the ratio of their medians is printed. Through PgBouncer the
service gets WA_DATABASE_URL on PgBouncer's port and WA_DATABASE_SESSION_URL straight to
PostgreSQL, as docs/operations.md ("Scaling out") says to deploy it."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import uvloop

from _support import PG_ADMIN, ROOT, table, write_results

sys.path.insert(0, str(ROOT / "tests"))
from private_pgbouncer import PrivatePgBouncer, binary

Run = Callable[..., Coroutine[Any, Any, dict[str, Any]]]


def compare(run: Run, args: argparse.Namespace) -> None:
    """`--rounds` pairs of `run`s (`--quick`, `--redis-url`), PgBouncer's pool `--pgbouncer`."""
    quick, rounds, pool_size, redis_url = args.quick, args.rounds, args.pgbouncer, args.redis_url
    path = binary()
    if path is None:
        raise SystemExit("pgbouncer is not installed (apt-get install pgbouncer)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    bouncer = PrivatePgBouncer(server_port=urlsplit(PG_ADMIN).port or 5432, pool_size=pool_size)
    bouncer.start()
    direct: list[float] = []
    pooled: list[float] = []
    latency: dict[str, list[float]] = {"direct": [], "pgbouncer": []}
    try:
        for _ in range(rounds):
            for figures, via in ((direct, None), (pooled, bouncer.url)):
                result = uvloop.run(run(quick, redis_url=redis_url, via=via))
                figures.append(result["dispatch_msgs_per_s"])
                name = "direct" if via is None else "pgbouncer"
                latency[name].append(result["enqueue_to_accepted_p50_ms"])
                print(f"{name}: {result['dispatch_msgs_per_s']:,.0f} msgs/s", flush=True)
    finally:
        bouncer.destroy()
    results: dict[str, Any] = {
        "pgbouncer": version.stdout.splitlines()[0],
        "pgbouncer_pool_mode": "transaction",
        "pgbouncer_default_pool_size": pool_size,
        "rounds": rounds,
        "direct_msgs_per_s": direct,
        "pgbouncer_msgs_per_s": pooled,
        "direct_enqueue_to_accepted_p50_ms": latency["direct"],
        "pgbouncer_enqueue_to_accepted_p50_ms": latency["pgbouncer"],
        "median_direct": statistics.median(direct),
        "median_pgbouncer": statistics.median(pooled),
        "ratio_pgbouncer_to_direct": statistics.median(pooled) / statistics.median(direct),
    }
    print(table([(name, value, "") for name, value in results.items()]))
    print(f"written to {write_results('dispatch-pgbouncer', results)}")
