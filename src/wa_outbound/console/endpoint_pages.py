"""Webhook endpoints: the organisation's endpoints, an endpoint's deliveries, a retry, the
recovery of failed ones, and enabling a disabled endpoint, through callbacks.endpoints and
callbacks.deliveries as the API does. Retries and recoveries are written to the audit trail
(the API's own calls of them are not: its actor is the key, in the access log)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from wa_outbound.callbacks import deliveries, endpoints
from wa_outbound.console.identity import OrgOperatorDep
from wa_outbound.console.web import ConsoleRoute, Refused, first, form, page, redirect
from wa_outbound.db.types import utcnow

router = APIRouter(route_class=ConsoleRoute)
PAGE_SIZE = 50


def _done(done: str) -> str | None:
    """What the last action did, from a word in the URL: the page never echoes its text."""
    count = done.removeprefix("recovered")
    if count != done and count.isdigit():
        return f"{int(count)} failed deliveries queued again."
    return {"retried": "Delivery queued again.", "enabled": "Endpoint enabled."}.get(done)


@router.get("/endpoints")
async def list_endpoints(request: Request, operator: OrgOperatorDep) -> Response:
    async with request.state.engine.connect() as conn:
        items = await endpoints.of_org(conn, operator.org_id)
    return page(
        request,
        "endpoints.html",
        operator=operator,
        nav="endpoints",
        items=[endpoints.view(i) for i in items],
    )


@router.get("/endpoints/{endpoint_id}")
async def show_endpoint(
    request: Request,
    operator: OrgOperatorDep,
    endpoint_id: uuid.UUID,
    status: str = "",
    cursor: str | None = None,
    done: str = "",
) -> Response:
    wanted = status if status in deliveries.STATUSES else None
    async with request.state.engine.connect() as conn:
        endpoint = await endpoints.owned(conn, operator.org_id, endpoint_id)
        items, next_cursor = await deliveries.page(
            conn, endpoint_id, status=wanted, limit=PAGE_SIZE, cursor=cursor or None
        )
    return page(
        request,
        "endpoint.html",
        operator=operator,
        nav="endpoints",
        endpoint=endpoints.view(endpoint),
        items=items,
        next_cursor=next_cursor,
        status=wanted or "",
        statuses=deliveries.STATUSES,
        done=_done(done),
    )


@router.post("/endpoints/{endpoint_id}/deliveries/{delivery_id}/retry")
async def retry(
    request: Request, operator: OrgOperatorDep, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    now = utcnow()
    async with request.state.engine.begin() as conn:
        await endpoints.owned(conn, operator.org_id, endpoint_id)
        await deliveries.retry(
            conn,
            endpoint_id,
            delivery_id,
            org_id=operator.org_id,
            now=now,
            actor=operator.actor,
        )
    return redirect(request, f"/endpoints/{endpoint_id}?done=retried")


def _since(value: str) -> datetime:
    """A `datetime-local` field's value, read as UTC (the page says so)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Refused(422, "Since: give a date and time, e.g. 2026-12-01T09:00.") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@router.post("/endpoints/{endpoint_id}/recover")
async def recover(request: Request, operator: OrgOperatorDep, endpoint_id: uuid.UUID) -> Response:
    fields = await form(request, csrf_token=operator.csrf_token)
    since = _since(first(fields, "since"))
    now = utcnow()
    async with request.state.engine.begin() as conn:
        await endpoints.owned(conn, operator.org_id, endpoint_id)
        requeued = await deliveries.recover(
            conn,
            endpoint_id,
            org_id=operator.org_id,
            since=since,
            now=now,
            actor=operator.actor,
        )
    return redirect(request, f"/endpoints/{endpoint_id}?done=recovered{requeued}")


@router.post("/endpoints/{endpoint_id}/enable")
async def enable(request: Request, operator: OrgOperatorDep, endpoint_id: uuid.UUID) -> Response:
    await form(request, csrf_token=operator.csrf_token)
    async with request.state.engine.begin() as conn:
        await endpoints.update(
            conn,
            operator.org_id,
            endpoint_id,
            {"enabled": True},
            now=utcnow(),
            actor=operator.actor,
        )
    return redirect(request, f"/endpoints/{endpoint_id}?done=enabled")
