"""`bench/dispatch.py --pgbouncer POOL`: dispatch runs straight to PostgreSQL, straight to it
with the pool set up for a pooler (statement caches off), and through a PgBouncer in
transaction mode (tests/private_pgbouncer.py, Debian's `pgbouncer`, its own temporary directory
and port) alternate, and the ratios of their medians are printed. Through PgBouncer the
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
    """`--rounds` rounds of the three variants (`--quick`, `--redis-url`); PgBouncer's
    `default_pool_size` is `--pgbouncer`."""
    quick, rounds, pool_size, redis_url = args.quick, args.rounds, args.pgbouncer, args.redis_url
    path = binary()
    if path is None:
        raise SystemExit("pgbouncer is not installed (apt-get install pgbouncer)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    bouncer = PrivatePgBouncer(server_port=urlsplit(PG_ADMIN).port or 5432, pool_size=pool_size)
    bouncer.start()
    # "direct, caches off": the pool set up for a pooler (another spelling of the same URL as
    # WA_DATABASE_SESSION_URL) but straight to PostgreSQL: what the unnamed statements cost
    # apart from PgBouncer's hop.
    variants: dict[str, Callable[[str], str] | None] = {
        "direct": None,
        "direct_caches_off": lambda url: f"{url}?prepared_statement_cache_size=0",
        "pgbouncer": bouncer.url,
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    latency: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(rounds):
            for name, via in variants.items():
                result = uvloop.run(run(quick, redis_url=redis_url, via=via))
                rates[name].append(result["dispatch_msgs_per_s"])
                latency[name].append(result["enqueue_to_accepted_p50_ms"])
                print(f"{name}: {result['dispatch_msgs_per_s']:,.0f} msgs/s", flush=True)
    finally:
        bouncer.destroy()
    medians = {name: statistics.median(figures) for name, figures in rates.items()}
    results: dict[str, Any] = {
        "pgbouncer": version.stdout.splitlines()[0],
        "pgbouncer_pool_mode": "transaction",
        "pgbouncer_default_pool_size": pool_size,
        "rounds": rounds,
        **{f"{name}_msgs_per_s": figures for name, figures in rates.items()},
        **{f"{name}_enqueue_to_accepted_p50_ms": ms for name, ms in latency.items()},
        **{f"median_{name}": median for name, median in medians.items()},
        "ratio_caches_off_to_direct": medians["direct_caches_off"] / medians["direct"],
        "ratio_pgbouncer_to_direct": medians["pgbouncer"] / medians["direct"],
    }
    print(table([(name, value, "") for name, value in results.items()]))
    print(f"written to {write_results('dispatch-pgbouncer', results)}")
