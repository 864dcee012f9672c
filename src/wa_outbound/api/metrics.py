"""`GET /metrics`: the app's own registry in Prometheus text format.

A scrape reads only memory: the database-backed gauges are refreshed by the queue-gauges
worker, not here.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wa_outbound.api import responses
from wa_outbound.api.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=responses.METRICS,
    description="This process's metrics, for Prometheus to scrape: each replica answers for "
    "itself. The queue and dead-letter gauges are refreshed from the database every "
    "`WA_METRICS_REFRESH_SECONDS`, not per scrape. No authentication: keep it off the internet.",
)
async def scrape(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
