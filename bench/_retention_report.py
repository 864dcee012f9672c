"""The retention benchmark's figures and verdicts (bench/retention.py): per phase pooled over
its windows, per window, and retention's own rate."""

from __future__ import annotations

import argparse
from typing import Any

from _support import percentile, table


def summary(samples: list[list[float]], seconds: float) -> dict[str, float]:
    latencies = [s * 1000 for _, s in samples]
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / seconds if seconds else float("nan"),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "p99_9_ms": percentile(latencies, 99.9),
        "max_ms": max(latencies, default=float("nan")),
    }


def verdict(held: bool) -> str:
    return "MET" if held else "MISSED"


def windows_of(samples: list[list[float]], windows: list[tuple[str, float, float]]) -> Any:
    """Per window, its requests; samples between windows (their switch) count nowhere."""
    samples = sorted(samples)
    out: list[list[list[float]]] = []
    for _, began, ended in windows:
        out.append([s for s in samples if began <= s[0] < ended])
    return out


def report(
    args: argparse.Namespace,
    timeline: list[dict[str, Any]],
    samples: list[list[float]],
    used: dict[str, Any],
) -> dict[str, Any]:
    spans = [(w["phase"], w["began"], w["ended"]) for w in timeline]
    per_window = windows_of(samples, spans)
    phases: dict[str, Any] = {}
    for phase in ("without", "with"):
        chosen = [i for i, w in enumerate(timeline) if w["phase"] == phase]
        pooled = [s for i in chosen for s in per_window[i]]
        seconds = sum(timeline[i]["ended"] - timeline[i]["began"] for i in chosen)
        phases[phase] = summary(pooled, seconds) | {"windows": len(chosen), "seconds": seconds}
    without, with_ = phases["without"], phases["with"]
    bound = 2 * without["p99_ms"]
    for phase in ("without", "with"):
        chosen = [i for i, w in enumerate(timeline) if w["phase"] == phase]
        over = sum(1 for i in chosen for _, s in per_window[i] if s * 1000 > bound)
        phases[phase]["over_bound"] = over
        phases[phase]["over_bound_share"] = over / max(1, phases[phase]["requests"])
    withs = [w for w in timeline if w["phase"] == "with"]
    deleted: dict[str, int] = {}
    for w in withs:
        for table_name, n in w["deleted"].items():
            deleted[table_name] = deleted.get(table_name, 0) + n
    batch_ms = sorted(ms for w in withs for ms in w["batch_ms"])
    busy_s = sum(w["busy_s"] for w in withs)
    rate = deleted.get("outbound_message", 0) / with_["seconds"] if with_["seconds"] else 0.0
    verdicts = {
        "slowest while deleting <= 2x p99 without": verdict(with_["max_ms"] <= bound),
        "p99 while deleting <= 2x p99 without": verdict(with_["p99_ms"] <= bound),
        "noise floor: slowest without <= 2x p99 without": verdict(without["max_ms"] <= bound),
    }
    rows: list[tuple[str, Any, str]] = [
        (f"{key} without / while deleting", f"{without[key]:.1f} / {with_[key]:.1f}", "")
        for key in ("requests", "per_s", "p50_ms", "p99_ms", "p99_9_ms", "max_ms")
    ]
    rows += [
        ("windows without / with", f"{without['windows']} / {with_['windows']}", ""),
        ("slowest while deleting / p99 without", with_["max_ms"] / without["p99_ms"], "<= 2"),
        ("p99 while deleting / p99 without", with_["p99_ms"] / without["p99_ms"], "<= 2"),
        ("slowest without / p99 without (noise)", without["max_ms"] / without["p99_ms"], ""),
        (
            "requests > 2x p99 without: without / with",
            f"{without['over_bound']} ({without['over_bound_share']:.3%}) / "
            f"{with_['over_bound']} ({with_['over_bound_share']:.3%})",
            "",
        ),
        ("messages deleted", deleted.get("outbound_message", 0), f"of {args.rows:,}"),
        ("deletion rate (messages/s, pauses included)", rate, ""),
        ("retention busy share of its windows", busy_s / with_["seconds"], ""),
        (
            "batch ms p50 / p99 / max",
            " / ".join(f"{percentile(batch_ms, p):.0f}" for p in (50, 99, 100)),
            f"{len(batch_ms)} batches",
        ),
        ("batch size / pause ratio", f"{used['batch_size']} / {used['pause_ratio']}", ""),
    ]
    print("window  phase     seconds  requests  p50   p99   max  load")
    for i, (w, got) in enumerate(zip(timeline, per_window, strict=True)):
        part = summary(got, w["ended"] - w["began"])
        print(
            f"{i:6d}  {w['phase']:8s} {w['ended'] - w['began']:7.1f} {part['requests']:9d} "
            f"{part['p50_ms']:4.0f} {part['p99_ms']:5.0f} {part['max_ms']:5.0f}  {w['load']:.1f}"
        )
    print(table(rows))
    for name, shown in verdicts.items():
        print(f"{name}: {shown}")
    return {
        "rows": args.rows,
        "connections": args.connections,
        "window_s": args.window_s,
        "retention_settings": used,
        "phases": phases,
        "verdicts": verdicts,
        "deleted": deleted,
        "deletion_rate_per_s": round(rate, 1),
        "retention_busy_share": round(busy_s / with_["seconds"], 3),
        "batch_ms": {p: percentile(batch_ms, p) for p in (50, 99, 100)},
        "load_average_1m": [round(w["load"], 2) for w in timeline],
    }
