"""The overview page: the queue and throughput over the last hours, as charts."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from wa_outbound.console import figures
from wa_outbound.console.charts import chart
from wa_outbound.console.identity import OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, page
from wa_outbound.db.types import utcnow

router = APIRouter(route_class=ConsoleRoute)


@router.get("/")
async def overview(request: Request, operator: OrgOperatorDep, hours: int = 3) -> Response:
    if hours not in figures.HOURS_CHOICES:
        hours = 3
    now = utcnow()
    async with request.state.engine.connect() as conn:
        found = await figures.read(conn, org_id=operator.org_id, now=now, hours=hours)
    step, start = figures.STEP, found.start
    charts = [
        (
            "Queue depth (rebuilt from message times)",
            chart(
                "Queue depth", found.depth, start=start, step=step, kind="line", css_class="depth"
            ),
        ),
        (
            "Sent per minute",
            chart("Sent per minute", found.sent, start=start, step=step, css_class="sent"),
        ),
        (
            "Failures per minute",
            chart("Failures per minute", found.failed, start=start, step=step, css_class="failed"),
        ),
        (
            "Queued per minute",
            chart("Queued per minute", found.queued, start=start, step=step, css_class="queued"),
        ),
    ]
    oldest_age_s = None
    if found.oldest_waiting is not None:
        oldest_age_s = int((now - found.oldest_waiting["created_at"]).total_seconds())
    return page(
        request,
        "overview.html",
        operator=operator,
        nav="overview",
        hours=hours,
        hours_choices=figures.HOURS_CHOICES,
        found=found,
        charts=charts,
        oldest_age_s=oldest_age_s,
    )
