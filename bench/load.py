"""HTTP load from a separate process: wrk when it is installed, else this module's aiohttp loop.

Both run one fixed request (method, body, headers) over `connections` keep-alive connections for
`duration_s` seconds, closed loop, and answer the same JSON: requests, seconds, requests_per_s,
p50_ms, p99_ms, errors (non-2xx answers and socket errors). The aiohttp fallback is this file
run as a script, so the load never shares a process (or a GIL) with what it measures:

    python bench/load.py URL --body-file F --header 'K: V' --connections 32 --duration-s 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_BODY_FILE"), "rb"):read("*a")
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def tool() -> str:
    """Which load generator `run` uses here."""
    return "wrk" if shutil.which("wrk") else "aiohttp"


def run(
    url: str, body: bytes, headers: dict[str, str], *, connections: int, duration_s: float
) -> dict[str, Any]:
    """Blocks for about `duration_s`; the load runs in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(body)
        if tool() == "wrk":
            return _wrk(url, body_file, headers, connections, duration_s, Path(tmp))
        command = [sys.executable, __file__, url, "--body-file", str(body_file)]
        command += [f"--header={k}: {v}" for k, v in headers.items()]
        command += ["--connections", str(connections), "--duration-s", str(duration_s)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def _wrk(
    url: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    tmp: Path,
) -> dict[str, Any]:
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = tmp / "post.lua"
    script.write_text(_WRK_SCRIPT % {"headers": lines})
    # One wrk thread: enough for these rates, and it leaves the cores to what is measured.
    seconds = f"-d{max(1, round(duration_s))}s"
    done = subprocess.run(
        ["wrk", "-t1", "--timeout", "30s", f"-c{connections}", seconds, "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        env={"BENCH_BODY_FILE": str(body_file), "PATH": "/usr/bin:/bin"},
    )
    raw = json.loads(done.stdout.split("RESULT ", 1)[1])
    seconds = raw["duration_us"] / 1e6
    return {
        "tool": "wrk",
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"],
    }


async def _aiohttp(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    body = Path(args.body_file).read_bytes()  # noqa: ASYNC240 (before the load starts)
    headers = dict(h.split(": ", 1) for h in args.header)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        until = time.perf_counter() + args.duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    async with session.post(args.url, data=body, headers=headers) as response:
                        await response.read()
                        ok = 200 <= response.status < 300
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        seconds = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "tool": "aiohttp",
        "requests": len(latencies) + errors,
        "seconds": round(seconds, 3),
        "requests_per_s": round((len(latencies) + errors) / seconds, 1),
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": errors,
    }


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser(description="aiohttp load: one POST, closed loop")
    parser.add_argument("url")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=10.0)
    print(json.dumps(uvloop.run(_aiohttp(parser.parse_args()))))


if __name__ == "__main__":
    main()
