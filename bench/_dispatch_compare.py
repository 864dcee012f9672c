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
    """The shared sender alone, one sender of the org's own, and `args.senders` of them."""
    results = uvloop.run(run(args.quick, args.profile, redis_url=args.redis_url))
    # Two single-sender phases: the shared sender of the environment (no row to read, no
    # WABA), and one sender of the org's own, as each of the spread's is (its token read
    # and decrypted, its WABA's templates looked up): the spread's own cost is against it.
    own = uvloop.run(run(args.quick, args.profile, senders=1, redis_url=args.redis_url))
    spread = uvloop.run(
        run(args.quick, args.profile, senders=args.senders, redis_url=args.redis_url)
    )
    results = {
        **{f"one_sender_{name}": value for name, value in results.items()},
        **{f"one_own_sender_{name}": value for name, value in own.items()},
        **{f"{args.senders}_senders_{name}": value for name, value in spread.items()},
        "ratio_senders_to_one_sender": spread["dispatch_msgs_per_s"]
        / results["dispatch_msgs_per_s"],
        "ratio_senders_to_one_own_sender": spread["dispatch_msgs_per_s"]
        / own["dispatch_msgs_per_s"],
    }
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
