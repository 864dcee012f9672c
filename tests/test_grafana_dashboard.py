"""deploy/grafana-dashboard.json uses only the metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wa_outbound.metrics import Metrics

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json"
_METRIC = re.compile(r"\boutbound_[a-z0-9_]+")
_SERIES_SUFFIX = re.compile(r"_(total|bucket|sum|count)$")


def expressions(panels: list[dict[str, Any]]) -> list[str]:
    found = []
    for panel in panels:
        found += [target["expr"] for target in panel.get("targets", [])]
        found += expressions(panel.get("panels", []))
    return found


def test_the_dashboard_queries_only_exported_metric_names() -> None:
    # Family names: counters without `_total`, histograms without `_bucket`/`_sum`/`_count`.
    families = {family.name for family in Metrics().registry.collect()}
    used = {
        name
        for expr in expressions(json.loads(DASHBOARD.read_text())["panels"])
        for name in _METRIC.findall(expr)
    }
    assert used
    assert {name for name in used if _SERIES_SUFFIX.sub("", name) not in families} == set()


def test_the_dashboard_covers_the_operators_questions() -> None:
    text = DASHBOARD.read_text()
    for metric in (
        "outbound_message_queue_depth",
        "outbound_message_dlq_size",
        "outbound_message_sent_total",
        "outbound_message_failed_total",
        "outbound_send_latency_seconds_bucket",
        "outbound_message_enqueue_to_accepted_seconds_bucket",
        "outbound_webhook_statuses_total",
        "outbound_ratelimit_decisions_total",
        "outbound_ratelimit_backend",
    ):
        assert metric in text
