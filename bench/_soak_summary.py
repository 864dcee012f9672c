"""The soak's summary (bench/soak.py): a verdict per line, met or MISSED, beside its target."""

from __future__ import annotations

from typing import Any


def flat(values: list[int], slack: float) -> bool:
    """Grown by at most `slack` from the first window to the last."""
    return not values or values[-1] - values[0] <= slack


def verdicts(rows: list[tuple[str, str, str, bool]]) -> str:
    """One line per figure: its value, its target, met or MISSED."""
    width = max(len(name) for name, *_ in rows)
    return "\n".join(
        f"{name:<{width}}  {value:>22}  {target:<46}{'met' if ok else 'MISSED'}"
        for name, value, target, ok in rows
    )


def summary(
    results: dict[str, Any],
    windows: list[dict[str, Any]],
    rate: float,
    dispatch_rate: float | None,
    errors: list[str],
) -> list[tuple[str, str, str, bool]]:
    def trend(key: str) -> tuple[str, bool]:
        values = [w[key] for w in windows]
        shown = f"{values[0]:,} -> {values[-1]:,}" if values else "no window"
        return shown, flat(values, rate)

    offered = results["enqueued"] + sum(results["enqueue_failures"].values())
    lifecycle = results["lifecycle_msgs_per_s"]
    rows = []
    if dispatch_rate is not None:
        rows.append(
            (
                "lifecycle_msgs_per_s (READ/s)",
                f"{lifecycle:,.0f}",
                f">= 0.5 x isolated dispatch {dispatch_rate:,.0f} = {dispatch_rate * 0.5:,.0f}",
                lifecycle >= dispatch_rate * 0.5,
            )
        )
    else:
        rows.append(
            ("lifecycle_msgs_per_s (READ/s)", f"{lifecycle:,.0f}", f">= offered {rate:,.0f}",
             lifecycle >= rate * 0.98)
        )  # fmt: skip
    for key, label in (
        ("queue_depth", "queue depth"),
        ("unread", "sent, not READ yet"),
        ("webhooks_unapplied", "webhook bodies unapplied"),
    ):
        shown, ok = trend(key)
        rows.append((label, shown, f"flat: grows <= {rate:,.0f} (1 s of load)", ok))
    final = results["statuses_end"]
    not_read = sum(n for status, n in final.items() if status != "READ" and status[0] != "_")
    given_up = results["fake_meta_webhooks"].get("given_up", "?")
    rows += [
        ("enqueued", f"{results['enqueued']:,}", f"all {offered:,} offered",
         not results["enqueue_failures"]),
        ("messages not READ at the end", f"{not_read:,}", "0", not_read == 0),
        ("webhook POSTs given up by Meta", str(given_up), "0", given_up == 0),
        ("error_log_lines", str(len(errors)), "0", not errors),
        ("rss_growth_pct_since_warm", f"{results['rss_growth_pct_since_warm'] or 0:.1f}", "< 10",
         (results["rss_growth_pct_since_warm"] or 0) < 10),
        ("enqueue_p99_ms", f"{results['enqueue_p99_ms']:,.1f}", "(reported)", True),
    ]  # fmt: skip
    rows += [
        (f"CPU cores busy: {name}", f"{cores:.2f}", "(reported)", True)
        for name, cores in results["cpu_cores"].items()
    ]
    return rows
