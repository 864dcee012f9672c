"""Webhook endpoints API: where the organisation's app is sent events (org key, or admin +
`X-Org-Id`), and the deliveries of those events."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from wa_outbound.api import webhook_endpoint_responses as answers
from wa_outbound.api.deps import CallerDep, EngineDep, SettingsDep
from wa_outbound.api.limits import single_valued_query
from wa_outbound.api.webhook_endpoint_models import (
    CreatedEndpoint,
    DeliveryPage,
    DeliveryStatus,
    Endpoint,
    EndpointCreate,
    EndpointList,
    EndpointUpdate,
    Recover,
    Requeued,
    Secret,
)
from wa_outbound.api.webhook_endpoint_models import Delivery as DeliveryModel
from wa_outbound.callbacks import deliveries, endpoints
from wa_outbound.db.types import utcnow

router = APIRouter(
    prefix="/v1/webhook-endpoints",
    tags=["webhook endpoints"],
    dependencies=[Depends(single_valued_query)],
)
EndpointId = Annotated[
    uuid.UUID,
    Path(
        description="The endpoint's id, as creating it returned it.", examples=[answers.ENDPOINT_ID]
    ),
]
DeliveryId = Annotated[
    uuid.UUID,
    Path(description="The delivery's id, as listed.", examples=[answers.DELIVERY_ID]),
]


def _encrypt(request: Request) -> endpoints.Encrypt:
    """Secrets are sealed by the app's keyring (wa_outbound.crypto) before they are stored."""
    encrypt: endpoints.Encrypt = request.app.state.keyring.encrypt
    return encrypt


@router.post(
    "",
    status_code=201,
    response_model=CreatedEndpoint,
    responses=answers.CREATE,
    summary="Add a webhook endpoint",
    description="Registers a URL the organisation's events are posted to, signed with the "
    "endpoint's secret (Standard Webhooks). `events` lists the types it is sent; null or absent: "
    "every type, types added later included; an unknown type answers 422 `validation_error`. "
    "The URL must be `https://`, without `user:password@`, on a host whose every address is "
    "public (422 `url_not_allowed`). The secret is in this answer and never shown again (a "
    "rotation makes a new one).",
)
async def create_endpoint(
    body: Annotated[EndpointCreate, Body()],
    request: Request,
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    await endpoints.check_url(body.url, allow_insecure=settings.callback_allow_insecure)
    async with engine.begin() as conn:
        created, secret = await endpoints.create(
            conn,
            caller.org_id,
            url=body.url,
            events=None if body.events is None else list(body.events),
            description=body.description,
            encrypt=_encrypt(request),
            now=utcnow(),
            actor=caller.actor,
        )
    return endpoints.view(created) | {"secret": secret}


@router.get(
    "",
    response_model=EndpointList,
    responses=answers.LIST,
    summary="List the organisation's webhook endpoints",
    description="The organisation's endpoints, oldest first. Secrets are never listed.",
)
async def list_endpoints(caller: CallerDep, engine: EngineDep) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await endpoints.of_org(conn, caller.org_id)
    return {"items": [endpoints.view(item) for item in items]}


@router.get(
    "/{endpoint_id}",
    response_model=Endpoint,
    responses=answers.GET,
    summary="Read a webhook endpoint",
    description="One of the organisation's endpoints; another organisation's id answers 404.",
)
async def get_endpoint(
    endpoint_id: EndpointId, caller: CallerDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        return endpoints.view(await endpoints.owned(conn, caller.org_id, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=Endpoint,
    responses=answers.UPDATE,
    summary="Change a webhook endpoint",
    description="Only the fields given change. A new `url` is checked as at creation. "
    "`events: null` sends every type; `description: null` clears it. `enabled: false` disables "
    "the endpoint (`disabled_reason: manual`): its deliveries are still created, pending, and "
    "not attempted. `enabled: true` on a disabled endpoint clears `disabled_reason` and sends "
    "its pending deliveries now, in order, on fresh retry schedules.",
)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: Annotated[EndpointUpdate, Body()],
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "enabled"):
        if changes.get(field, False) is None:
            del changes[field]  # null leaves these as they are (`events: null` means every type)
    async with engine.connect() as conn:
        await endpoints.owned(conn, caller.org_id, endpoint_id)  # 404 before a DNS lookup
    if "url" in changes:
        await endpoints.check_url(changes["url"], allow_insecure=settings.callback_allow_insecure)
    async with engine.begin() as conn:
        updated = await endpoints.update(
            conn, caller.org_id, endpoint_id, changes, now=utcnow(), actor=caller.actor
        )
    return endpoints.view(updated)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    responses=answers.DELETE,
    summary="Delete a webhook endpoint",
    description="Deletes the endpoint and, in the same transaction, its deliveries: pending "
    "ones are never sent. An attempt under way at that moment finishes.",
)
async def delete_endpoint(
    endpoint_id: EndpointId, caller: CallerDep, engine: EngineDep
) -> Response:
    async with engine.begin() as conn:
        await endpoints.delete(conn, caller.org_id, endpoint_id, now=utcnow(), actor=caller.actor)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=Secret,
    responses=answers.ROTATE,
    summary="Rotate a webhook endpoint's secret",
    description="A new secret, shown this once. For 24 hours the previous secret still signs: "
    "each request carries both signatures, so receivers can switch without losing one. A second "
    "rotation drops the oldest secret at once.",
)
async def rotate_secret(
    endpoint_id: EndpointId, request: Request, caller: CallerDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        secret = await endpoints.rotate_secret(
            conn,
            caller.org_id,
            endpoint_id,
            encrypt=_encrypt(request),
            now=utcnow(),
            actor=caller.actor,
        )
    return {"secret": secret}


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses=answers.DELIVERIES,
    summary="List an endpoint's deliveries, newest first",
    description="The endpoint's deliveries (one per event sent to it), newest first, optionally "
    "only those in one `status`. A page holds up to `limit`; pass its `next_cursor` as `cursor` "
    "for the next page (null on the last).",
)
async def list_deliveries(
    endpoint_id: EndpointId,
    caller: CallerDep,
    engine: EngineDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    async with engine.connect() as conn:
        await endpoints.owned(conn, caller.org_id, endpoint_id)
        items, next_cursor = await deliveries.page(
            conn, endpoint_id, status=status, limit=limit, cursor=cursor
        )
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryModel,
    responses=answers.RETRY,
    summary="Retry a delivery now",
    description="Makes the delivery `pending` and due now, whatever its status (a failed one "
    "gets one more attempt; a succeeded one is sent again, with the same `webhook-id`). While "
    "an earlier event of the same message is pending for this endpoint, 409 "
    "`delivery_blocked`: events of a message reach an endpoint in order. On a disabled "
    "endpoint the delivery waits until the endpoint is enabled.",
)
async def retry_delivery(
    endpoint_id: EndpointId, delivery_id: DeliveryId, caller: CallerDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await endpoints.owned(conn, caller.org_id, endpoint_id)
        return await deliveries.retry(
            conn,
            endpoint_id,
            delivery_id,
            org_id=caller.org_id,
            now=utcnow(),
            actor=caller.actor,
        )


@router.post(
    "/{endpoint_id}/recover",
    status_code=202,
    response_model=Requeued,
    responses=answers.RECOVER,
    summary="Send failed deliveries again",
    description="Every delivery of the endpoint that `failed` and was created at or after "
    "`since` is made pending again, due now, on a fresh retry schedule; each message's events "
    "still go in order. Answers how many.",
)
async def recover(
    endpoint_id: EndpointId,
    body: Annotated[Recover, Body()],
    caller: CallerDep,
    engine: EngineDep,
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await endpoints.owned(conn, caller.org_id, endpoint_id)
        requeued = await deliveries.recover(
            conn,
            endpoint_id,
            org_id=caller.org_id,
            since=body.since,
            now=utcnow(),
            actor=caller.actor,
        )
    return {"requeued": requeued}
