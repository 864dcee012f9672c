"""bench/dispatch.py's comparisons: one sender against many, and without against with a webhook
endpoint subscribed to every event."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from _support import table, write_results

Run = Callable[..., Coroutine[Any, Any, dict[str, Any]]]


def senders(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The shared sender alone, one sender of the org's own, and `args.senders` of them, in
    `args.rounds` rounds whose order turns (a phase that always ran last would always run warm):
    each phase's median, and the spread's ratio to each single sender's median."""
    # Two single-sender phases: the shared sender of the environment (no row to read, no
    # WABA), and one sender of the org's own, as each of the spread's is (its token read
    # and decrypted, its WABA's templates looked up): the spread's own cost is against it.
    phases = {"one_sender": 0, "one_own_sender": 1, f"{args.senders}_senders": args.senders}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in phases}
    for round_ in range(args.rounds):
        order = list(phases.items())
        for name, count in order[round_ % 3 :] + order[: round_ % 3]:
            result = uvloop.run(
                run(args.quick, args.profile, senders=count, redis_url=args.redis_url)
            )
            runs[name].append(result)
            print(
                f"round {round_ + 1} {name}: {result['dispatch_msgs_per_s']:,.0f} msgs/s "
                f"(steady {result['dispatch_steady_msgs_per_s']:,.0f}), "
                f"{result['service_cpu_ms_per_message']:.3f} CPU ms/msg, "
                f"{result['dispatch_claims']:.0f} claims of {result['dispatch_mean_batch']:.1f}, "
                f"send {result['send_mean_ms']:.1f} ms",
                flush=True,
            )
    results: dict[str, Any] = {"rounds": args.rounds}
    for name, done in runs.items():
        figures = (
            "dispatch_msgs_per_s",
            "dispatch_steady_msgs_per_s",
            "service_cpu_ms_per_message",
        )
        for figure in figures:
            results[f"{name}_{figure}"] = [r[figure] for r in done]
            results[f"{name}_{figure}_median"] = statistics.median(r[figure] for r in done)
        results[f"{name}_ratio_to_bare_aiohttp_median"] = statistics.median(
            r["ratio_dispatch_to_bare_aiohttp"] for r in done
        )
    spread = results[f"{args.senders}_senders_dispatch_msgs_per_s_median"]
    results["ratio_senders_to_one_sender"] = (
        spread / results["one_sender_dispatch_msgs_per_s_median"]
    )
    results["ratio_senders_to_one_own_sender"] = (
        spread / results["one_own_sender_dispatch_msgs_per_s_median"]
    )
    return results


def callbacks(run: Run, quick: bool, rounds: int, redis_url: str) -> None:
    """Runs without and with a webhook endpoint subscribed to every event, alternately."""
    without: list[float] = []
    with_endpoint: list[float] = []
    for _ in range(rounds):
        for figures, endpoint in ((without, False), (with_endpoint, True)):
            result = uvloop.run(run(quick, redis_url=redis_url, callback_endpoint=endpoint))
            figures.append(result["dispatch_msgs_per_s"])
            print(f"endpoint={endpoint}: {result['dispatch_msgs_per_s']:,.0f} msgs/s", flush=True)
    results: dict[str, Any] = {
        "rounds": rounds,
        "without_endpoint_msgs_per_s": without,
        "with_endpoint_msgs_per_s": with_endpoint,
        "median_without": statistics.median(without),
        "median_with": statistics.median(with_endpoint),
        "ratio_with_to_without": statistics.median(with_endpoint) / statistics.median(without),
    }
    print(table([(name, value, "") for name, value in results.items()]))
    print(f"written to {write_results('dispatch-callbacks', results)}")
