"""The whole benchmark suite in one command: `make bench` (`make bench-quick`: smaller counts).

Runs, against the machine's PostgreSQL and Redis, each part with its baseline in the same run:
enqueue (bench/enqueue.py: the service vs pgbench-style asyncpg inserts and a bare FastAPI insert
endpoint), dispatch (bench/dispatch.py: the service vs a bare aiohttp loop to the same fake Meta),
webhooks (bench/webhooks.py: one status per POST, as Meta sends them, vs the same bare FastAPI
insert endpoint at 16 in flight; and 100-status payloads), the rate limiter (bench/ratelimit.py:
vs a bare EVALSHA loop) and the callback delivery worker (bench/callbacks.py: vs a bare aiohttp
loop to the same receiver).
Prints one table and writes bench/results.json.

    .venv/bin/python bench/run.py [--quick] [--only enqueue,dispatch,webhooks,ratelimit,callbacks]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvloop

import callbacks
import dispatch
import enqueue
import ratelimit
import webhooks
from _support import ROOT, machine

# (key, goal, "min" or "max", baseline key, ratio key) per line of the table.
TARGETS: list[tuple[str, float | None, str, str | None, str | None]] = [
    ("enqueue_single_req_per_s", 800, "min", "baseline_bare_fastapi_insert_req_per_s",
     "ratio_enqueue_single_to_bare_fastapi"),
    ("enqueue_single_p99_ms", 50, "max", "baseline_bare_fastapi_insert_p99_ms", None),
    ("enqueue_batch_msgs_per_s", 20_000, "min", "baseline_asyncpg_inserts_per_s",
     "ratio_enqueue_batch_to_asyncpg_inserts"),
    ("dispatch_msgs_per_s", 2_000, "min", "baseline_bare_aiohttp_to_fake_meta_req_per_s",
     "ratio_dispatch_to_bare_aiohttp"),
    ("enqueue_to_accepted_p50_ms", 20, "max", None, None),
    ("enqueue_to_accepted_p99_ms", None, "max", None, None),
    ("ratelimit_redis_decisions_per_s", None, "min", "baseline_bare_evalsha_per_s",
     "ratio_ratelimit_redis_to_bare_evalsha"),
    ("ratio_ratelimit_redis_to_bare_evalsha", 0.9, "min", None, None),
    ("ratelimit_redis_p50_ms", 0.2, "max", None, None),
    ("ratelimit_redis_batch_msgs_per_s", 100_000, "min", None, None),
    ("ratelimit_db_decisions_per_s", 1_000, "min", None, None),
    ("ratelimit_db_p50_ms", 2, "max", None, None),
    ("webhook_single_req_per_s", None, "min", "baseline_bare_fastapi_insert_16_req_per_s",
     "ratio_webhook_single_to_bare_fastapi"),
    ("ratio_webhook_single_to_bare_fastapi", 1.0, "min", None, None),
    ("webhook_single_p99_ms", 100, "max", "baseline_bare_fastapi_insert_16_p99_ms", None),
    ("webhook_single_applied_statuses_per_s", None, "min", None, None),
    ("webhook_statuses_per_s", 3_000, "min", None, None),
    ("webhook_p99_ms", 100, "max", None, None),
    ("webhook_16_in_flight_statuses_per_s", None, "min", None, None),
    ("webhook_16_in_flight_p99_ms", None, "max", None, None),
    ("callback_deliveries_per_s", 2_000, "min", "baseline_bare_aiohttp_to_receiver_per_s",
     "ratio_callbacks_to_bare_aiohttp"),
    ("ratio_callbacks_to_bare_aiohttp", 0.5, "min", None, None),
    ("rss_mb_peak", 200, "max", None, None),
]  # fmt: skip


async def _enqueue(quick: bool) -> dict[str, Any]:
    detail = await enqueue.run(quick)
    return {**enqueue.figures(detail), "_detail": detail, "_rss": detail["rss_mb"]}


async def _dispatch(quick: bool) -> dict[str, Any]:
    figures = await dispatch.run(quick)
    return {**figures, "_rss": figures.pop("rss_mb_peak")}


async def _webhooks(quick: bool) -> dict[str, Any]:
    report = await webhooks.run(quick)
    return {**webhooks.figures(report), "_detail": report, "_rss": report["rss_mb_peak"]}


async def _ratelimit(quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = await ratelimit.run(quick)
    return {**ratelimit.figures(report), "_detail": report}


async def _callbacks(quick: bool) -> dict[str, Any]:
    report = await callbacks.run(quick)
    keys = (
        "callback_deliveries_per_s",
        "baseline_bare_aiohttp_to_receiver_per_s",
        "ratio_callbacks_to_bare_aiohttp",
    )
    return {**{key: report[key] for key in keys}, "_detail": report}


PARTS: dict[str, Callable[[bool], Awaitable[dict[str, Any]]]] = {
    "enqueue": _enqueue,
    "dispatch": _dispatch,
    "webhooks": _webhooks,
    "ratelimit": _ratelimit,
    "callbacks": _callbacks,
}


def _verdict(value: float, goal: float | None, sense: str) -> str:
    if goal is None:
        return ""
    met = value >= goal if sense == "min" else value <= goal
    return "met" if met else "MISSED"


def show(results: dict[str, Any]) -> str:
    header = f"{'figure':<40}{'value':>12}  {'target':<12}{'':<8}{'baseline':>12}{'ratio':>8}"
    lines = [header, "-" * len(header)]
    for key, goal, sense, base_key, ratio_key in TARGETS:
        if key not in results:
            continue
        value = results[key]
        target = "" if goal is None else f"{'>=' if sense == 'min' else '<='} {goal:,}"
        base = f"{results[base_key]:>12,.1f}" if base_key in results else f"{'':>12}"
        ratio = f"{results[ratio_key]:>8.2f}" if ratio_key in results else f"{'':>8}"
        verdict = _verdict(value, goal, sense)
        lines.append(f"{key:<40}{value:>12,.2f}  {target:<12}{verdict:<8}{base}{ratio}")
    return "\n".join(lines)


async def main(quick: bool, only: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    details: dict[str, Any] = {}
    peaks: list[float] = []
    for name in only:
        part_started = time.monotonic()
        figures = await PARTS[name](quick)
        details[name] = figures.pop("_detail", None)
        if "_rss" in figures:
            peaks.append(figures.pop("_rss"))
        results.update(figures)
        details.setdefault("seconds", {})[name] = round(time.monotonic() - part_started, 1)
        print(f"[{name}: {details['seconds'][name]} s, load average {os.getloadavg()[0]:.2f}]")
    if peaks:
        results["rss_mb_peak"] = max(peaks)
    results["targets"] = {
        key: {"goal": goal, "sense": sense, "verdict": _verdict(results[key], goal, sense)}
        for key, goal, sense, _, _ in TARGETS
        if goal is not None and key in results
    }
    results["machine"] = machine()  # its load_average: at the end of the run
    results["seconds"] = round(time.monotonic() - started, 1)
    results["details"] = details
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: under a minute")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    unknown = set(only) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    results = uvloop.run(main(args.quick, only))
    print()
    print(show(results))
    m = results["machine"]
    print(
        f"\n{m['cores']} cores, {m['cpu']}; load average {results['load_average_at_start']} at"
        f" the start, {m['load_average']} at the end; {results['seconds']} s"
    )
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    cli()
