"""Messages API: queue (single and batch), read, list, timeline, cancel."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound import phone
from wa_outbound.api import examples, responses
from wa_outbound.api.deps import (
    EngineDep,
    PrincipalDep,
    SettingsDep,
    TemplatesDep,
    wake_dispatcher,
)
from wa_outbound.api.direct_route import DirectRoute
from wa_outbound.api.errors import error_body
from wa_outbound.api.limits import single_valued_query
from wa_outbound.api.models import (
    BatchItem,
    BatchRequest,
    BatchResponse,
    Message,
    MessageCreate,
    MessageEvents,
    MessagePage,
)
from wa_outbound.api.openapi import MessageId
from wa_outbound.config import Settings
from wa_outbound.errors import InvalidRequest
from wa_outbound.outbox import enqueue, messages, one, replies
from wa_outbound.outbox.gated import enqueue_gated
from wa_outbound.status import REPLY_TO, Status
from wa_outbound.templates.sync import TemplateSync

router = APIRouter(
    prefix="/v1/messages",
    tags=["messages"],
    dependencies=[Depends(single_valued_query)],
)
_batch_item = TypeAdapter(BatchItem)
_batch_items = TypeAdapter(list[BatchItem])
_GIVEN_AS_IS = ("template", "media", "interactive")
_ADDED_LATER = ("from_", "expires_at", "media", "interactive", "reply_to")

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description="Replays of the same key and body answer 200 "
        "with the original message; the same key with another body answers 409.",
    ),
]


def _new_message(body: MessageCreate, idempotency_key: str | None) -> enqueue.NewMessage:
    # The hash covers the body with its defaults filled in: leaving out a default or sending it
    # is the same request.
    # The fields added after the first (`from`, `expires_at`, the kinds beyond text, `reply_to`)
    # count only when given, so keys used before they existed replay as before.
    left_out = {"idempotency_key"}
    left_out |= {name for name in _ADDED_LATER if getattr(body, name) is None}
    content = body.model_dump(mode="json", exclude=left_out)
    request_hash = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    if body.text is not None:
        kind, payload = "text", content["text"]
    else:
        # Stored, and sent to Meta, as given: no key the caller left out is added.
        kind, part = next((k, p) for k in _GIVEN_AS_IS if (p := getattr(body, k)) is not None)
        payload = part.model_dump(mode="json", exclude_unset=True)
    if body.reply_to is not None:
        payload[REPLY_TO] = body.reply_to  # an id is turned into its wamid by _resolve_replies
    return enqueue.NewMessage(
        to=body.to,
        kind=kind,
        payload=payload,
        metadata=body.metadata,
        send_after=body.send_after,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        sender=body.from_,
        expires_at=body.expires_at,
    )


async def _resolve_replies(
    engine: EngineDep, org_id: str, items: list[enqueue.NewMessage]
) -> list[InvalidRequest | None]:
    """Replace each `reply_to` given as our id of an inbound message by its wamid (in place);
    the refusal of each item whose id names no inbound message the organisation was told of."""
    ids = {
        index: found
        for index, item in enumerate(items)
        if (reply_to := item.payload.get(REPLY_TO)) and (found := replies.as_id(reply_to))
    }
    refusals: list[InvalidRequest | None] = [None] * len(items)
    if not ids:
        return refusals
    async with engine.connect() as conn:
        wamids = await replies.wamids_of(conn, org_id=org_id, ids=ids.values())
    for index, inbound in ids.items():
        if inbound in wamids:
            items[index].payload[REPLY_TO] = wamids[inbound]
        else:
            refusals[index] = InvalidRequest(
                "reply_to: no inbound message has this id (give its wamid, or the id of its "
                "message.received event)",
                field="reply_to",
            )
    return refusals


async def create_message(
    body: Annotated[MessageCreate, Body(openapi_examples=examples.SEND_TEMPLATE)],
    request: Request,
    response: Response,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any] | Response:
    # The lifespan's state read here rather than as dependencies: this route is served by
    # DirectRoute, which honours only the dependencies it knows (api/direct_route.py).
    state = request.state
    engine: AsyncEngine = state.engine
    settings: Settings = state.settings
    templates: TemplateSync = state.templates
    new = _new_message(body, idempotency_key)
    [refused] = await _resolve_replies(engine, principal.org_id, [new])
    if refused is not None:
        raise refused
    outcome = None
    if settings.is_postgres:
        outcome = await one.enqueue_one(
            engine,
            org_id=principal.org_id,
            item=new,
            max_attempts=settings.max_attempts,
            actor=principal.actor,
            shared_sender=settings.has_shared_sender,
        )
    if outcome is None:  # SQLite, or not the common case: the general path decides
        [outcome] = await enqueue_gated(
            engine,
            templates.look_up,
            org_id=principal.org_id,
            items=[new],
            max_attempts=settings.max_attempts,
            actor=principal.actor,
            shared_sender=settings.has_shared_sender,
        )
        if outcome.error is not None:  # nothing was stored for it
            raise outcome.error
    assert outcome.message is not None
    if not outcome.created:
        response.status_code = 200
        return messages.view(outcome.message)
    wake_dispatcher(request)
    # A new message has no error and every field of the model: serialised directly, as the
    # response model would (UTC times end in Z), without validating what we just built.
    content = orjson.dumps(messages.view(outcome.message), option=orjson.OPT_UTC_Z)
    return Response(content, status_code=202, media_type="application/json")


router.add_api_route(
    "",
    create_message,
    methods=["POST"],
    status_code=202,
    response_model=Message,
    responses=responses.QUEUE_MESSAGE,
    summary="Queue one message",
    description="Queues a template message, or a session message (`text`, `media` or "
    "`interactive`), to one recipient. The recipient must have granted consent "
    "(`PUT /v1/consents/{phone}`); a session message is accepted only while the recipient's "
    "24-hour service window with the sender is open (they wrote to it in the last 24 hours). "
    "`media` and `interactive` are held to Meta's limits here and sent to Meta exactly as "
    "given; `reply_to` (an inbound wamid, or the `id` of a `message.received` event) is sent "
    "as Meta's `context`. The message is sent once it is due (`send_after`) and "
    "the organisation's rate limits allow; follow it with `GET /v1/messages/{id}`.\n\n"
    "With an `Idempotency-Key`, a retry with the same key and body answers 200 with the "
    "message first queued and queues nothing; the same key with another body answers 409. "
    "A refused request stores nothing, so its key stays free.",
    route_class_override=DirectRoute,
)


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=responses.QUEUE_BATCH,
    summary="Queue up to 1000 messages",
    description="Queues up to 1,000 messages in one transaction. Each item is the body of "
    "`POST /v1/messages` plus an optional `idempotency_key`, and is judged on its own: the "
    "answer is 200 with one result per item, in order, holding the message (queued now, or "
    "first queued under its key) or the error the item would have got alone. Valid items are "
    "queued even when others are refused.",
)
async def create_batch(
    body: Annotated[BatchRequest, Body(openapi_examples=examples.BATCH)],
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    results: list[dict[str, Any]] = [{"index": i} for i in range(len(body.messages))]
    valid: list[tuple[int, enqueue.NewMessage]] = []
    try:  # usually every item is valid: one call validates them all
        items = _batch_items.validate_python(body.messages)
    except ValidationError:
        items = None
    for index, raw in enumerate(body.messages):
        if items is not None:
            valid.append((index, _new_message(items[index], items[index].idempotency_key)))
            continue
        try:  # some are not: each is validated on its own to say which and why
            item = _batch_item.validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            results[index]["error"] = error_body(
                "validation_error",
                f"{where}: {first['msg']}",
                {
                    "errors": [
                        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                        for e in exc.errors()
                    ]
                },
            )["error"]
            continue
        valid.append((index, _new_message(item, item.idempotency_key)))
    refusals = await _resolve_replies(engine, principal.org_id, [new for _, new in valid])
    for (index, _), refused in zip(valid, refusals, strict=True):
        if refused is not None:
            results[index]["error"] = error_body(refused.code, refused.message, refused.details)[
                "error"
            ]
    valid = [item for item, refused in zip(valid, refusals, strict=True) if refused is None]
    outcomes = await enqueue_gated(
        engine,
        templates.look_up,
        org_id=principal.org_id,
        items=[new for _, new in valid],
        max_attempts=settings.max_attempts,
        actor=principal.actor,
        shared_sender=settings.has_shared_sender,
    )
    if any(outcome.created for outcome in outcomes):
        wake_dispatcher(request)
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.error is not None:
            err = outcome.error
            results[index]["error"] = error_body(err.code, err.message, err.details)["error"]
        else:
            assert outcome.message is not None
            results[index]["message"] = messages.view(outcome.message)
    # Serialised directly, in the response model's shape (every key present, UTC times in Z):
    # validating up to a thousand messages we just built cost a quarter of the request's CPU.
    shaped = [
        {"index": r["index"], "message": r.get("message"), "error": r.get("error")} for r in results
    ]
    content = orjson.dumps({"results": shaped}, option=orjson.OPT_UTC_Z)
    return Response(content, media_type="application/json")


@router.get(
    "",
    response_model=MessagePage,
    responses=responses.LIST_MESSAGES,
    summary="List messages, newest first",
    description="The calling organisation's messages, newest first, optionally only those in "
    "one `status` or to one number (`to`, normalised as in a body). A page holds up to `limit` "
    "messages; pass its `next_cursor` as `cursor` for the next page (null on the last).",
)
async def list_messages(
    principal: PrincipalDep,
    engine: EngineDep,
    status: Status | None = None,
    to: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if to is not None:
        try:
            to = phone.normalize(to)
        except ValueError as exc:
            raise InvalidRequest(f"to: {exc}", field="to") from exc
    async with engine.connect() as conn:
        rows, next_cursor = await messages.list_messages(
            conn,
            org_id=principal.org_id,
            limit=limit,
            cursor=cursor,
            status=status.value if status else None,
            to=to,
        )
    return {"items": [messages.view(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/{message_id}",
    response_model=Message,
    responses=responses.READ_MESSAGE,
    summary="Read one message",
    description="The message as it is now: its status, attempts, the provider's message id "
    "(wamid), its last error and when each delivery step happened.",
)
async def get_message(
    message_id: MessageId, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await messages.get_message(conn, org_id=principal.org_id, message_id=message_id)
    return messages.view(row)


@router.get(
    "/{message_id}/events",
    response_model=MessageEvents,
    responses=responses.MESSAGE_EVENTS,
    summary="A message's timeline",
    description="Everything that happened to the message, oldest first: queued, claimed, "
    "accepted by Meta, retries and their errors, every status Meta reported (those ignored "
    "too, with the reason), cancellation, dead-lettering and replays.",
)
async def get_events(
    message_id: MessageId, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.connect() as conn:
        items = await messages.list_events(conn, org_id=principal.org_id, message_id=message_id)
    return {"items": items}


@router.post(
    "/{message_id}/cancel",
    response_model=Message,
    responses=responses.CANCEL_MESSAGE,
    summary="Cancel a QUEUED or RETRYING message",
    description="Stops a message that is waiting to be sent (`QUEUED`, or `RETRYING` after a "
    "failed attempt): it becomes `CANCELLED` and is never sent. A message being sent, or "
    "sent, cannot be called back.",
)
async def cancel(
    message_id: MessageId, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    async with engine.begin() as conn:
        row = await messages.cancel_message(
            conn, org_id=principal.org_id, message_id=message_id, actor=principal.actor
        )
    return messages.view(row)
