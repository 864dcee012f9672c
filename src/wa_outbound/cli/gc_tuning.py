"""The cyclic garbage collector as `serve` sets it, once the app is built (benchmarks that run a
worker in their own process set it the same way, to measure it as it runs)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    # Everything built so far lives as long as the process: move it out of the collector's
    # reach, so its full collections stop pausing requests for tens of ms.
    gc.freeze()
    # A batch enqueue allocates tens of thousands of short-lived objects: with the default
    # threshold (700) the young generation is collected ~100 times per batch request. Acyclic
    # garbage is freed by reference counting anyway; collect cycles less often.
    gc.set_threshold(20_000, 20, 20)
