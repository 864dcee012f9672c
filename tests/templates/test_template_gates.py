"""The registry as a gate, on SQLite and PostgreSQL: what queueing refuses (not approved, not
found once the WABA synced, marketing to an opted-out recipient), what it accepts while the
registry is advisory, Meta asked once for an unknown name; and at claim time, a PAUSED template's
messages wait without using an attempt until it is APPROVED again, other statuses fail them,
an opt-out since queueing fails a marketing message, and Meta's 131050 does the same."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import Clock, dispatcher_for, event_types, message, new_org
from factories import insert_message, insert_sender
from helpers import make_settings
from template_helpers import (
    Recording,
    change,
    consent_of,
    history_of,
    item,
    opt_out,
    synced,
)
from wa_outbound.db.types import utcnow
from wa_outbound.errors import MarketingOptedOut, TemplateNotApproved, TemplateNotFound
from wa_outbound.outbox import enqueue
from wa_outbound.outbox.gated import enqueue_gated
from wa_outbound.templates import registry
from wa_outbound.webhooks import intake
from wa_outbound.whatsapp.retry import ProviderError

W = "waba-gate"
USER, OTHER = "+33612345678", "+33698765432"
LISTING = (
    item("order_update"),
    item("promo_offer", category="MARKETING"),
    item("paused_template", status="PAUSED"),
    item("rejected_template", status="REJECTED"),
)


def new(to: str, name: str) -> enqueue.NewMessage:
    return enqueue.NewMessage(
        to=to,
        kind="template",
        payload={"name": name, "language": "en_US"},
        metadata={},
        send_after=None,
        idempotency_key=None,
        request_hash=f"h-{uuid.uuid4()}",
    )


async def org_with_sender(engine: AsyncEngine) -> str:
    org_id = await new_org(engine, USER, OTHER)
    async with engine.begin() as conn:
        await insert_sender(conn, org_id, phone_number_id="8000001", waba_id=W)
    return org_id


async def queue(
    engine: AsyncEngine, org_id: str, *items: enqueue.NewMessage, **call: Any
) -> list[enqueue.Outcome]:
    async with engine.begin() as conn:
        return await enqueue.enqueue(
            conn,
            org_id=org_id,
            items=list(items),
            max_attempts=5,
            actor="test",
            shared_sender=False,
            **call,
        )


async def test_queueing_refuses_what_the_synced_registry_does_not_approve(
    db_engine: AsyncEngine,
) -> None:
    org_id = await org_with_sender(db_engine)
    await synced(db_engine, W, *LISTING)
    await opt_out(db_engine, org_id, OTHER)
    outcomes = await queue(
        db_engine,
        org_id,
        new(USER, "order_update"),
        new(USER, "paused_template"),
        new(USER, "rejected_template"),
        new(USER, "never_heard_of"),
        new(OTHER, "promo_offer"),
        new(USER, "promo_offer"),
        new(OTHER, "order_update"),
    )
    errors = [o.error for o in outcomes]
    assert [type(e).__name__ if e else None for e in errors] == [
        None,
        "TemplateNotApproved",
        "TemplateNotApproved",
        "TemplateNotFound",
        "MarketingOptedOut",
        None,
        None,  # a utility template to an opted-out recipient is not marketing
    ]
    assert isinstance(errors[1], TemplateNotApproved)
    assert errors[1].details["status"] == "PAUSED"
    assert errors[2] is not None
    assert errors[2].details["status"] == "REJECTED"
    assert isinstance(errors[3], TemplateNotFound)
    assert errors[3].details == {"waba_id": W, "name": "never_heard_of", "language": "en_US"}
    assert isinstance(errors[4], MarketingOptedOut)
    assert sum(1 for o in outcomes if o.created) == 3


async def test_a_waba_never_synced_is_advisory_but_what_it_knows_still_counts(
    db_engine: AsyncEngine,
) -> None:
    org_id = await org_with_sender(db_engine)
    # A webhook told of one template; the WABA was never read in full.
    await change(db_engine, W, "paused_template", status="PAUSED")
    outcomes = await queue(
        db_engine, org_id, new(USER, "anything_at_all"), new(USER, "paused_template")
    )
    assert outcomes[0].created
    assert isinstance(outcomes[1].error, TemplateNotApproved)


async def test_an_unknown_template_is_looked_up_once_then_decided(db_engine: AsyncEngine) -> None:
    org_id = await org_with_sender(db_engine)
    await synced(db_engine, W, *LISTING)
    asked: list[tuple[str, str]] = []

    async def meta_has_it(waba_id: str, name: str) -> bool:
        asked.append((waba_id, name))
        await synced_one(db_engine, waba_id, item(name))
        return True

    async def meta_down(waba_id: str, name: str) -> bool:
        asked.append((waba_id, name))
        return False

    async def meta_has_none(waba_id: str, name: str) -> bool:
        asked.append((waba_id, name))
        return True

    call = {"org_id": org_id, "max_attempts": 5, "actor": "t", "shared_sender": False}
    [made] = await enqueue_gated(db_engine, meta_has_it, items=[new(USER, "brand_new")], **call)
    assert made.created
    assert asked == [(W, "brand_new")]
    [advisory] = await enqueue_gated(db_engine, meta_down, items=[new(USER, "unknown_one")], **call)
    assert advisory.created, "Meta unreachable: the registry is advisory"
    asked.clear()
    outcomes = await enqueue_gated(
        db_engine, meta_has_none, items=[new(USER, "nope"), new(OTHER, "nope")], **call
    )
    assert asked == [(W, "nope")], "one question for one name"
    assert all(isinstance(o.error, TemplateNotFound) for o in outcomes)


async def synced_one(engine: AsyncEngine, waba_id: str, listed: dict[str, Any]) -> None:
    """What a lookup by name stores: that template, the rest of the WABA untouched."""
    async with engine.begin() as conn:
        await registry.store_listing(conn, waba_id, [listed], now=utcnow(), complete=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_paused_template_holds_its_messages_until_approved_again(
    database_url: str, clock: Clock
) -> None:
    provider = Recording()
    async with dispatcher_for(make_settings(database_url), provider, clock) as dispatcher:
        engine = dispatcher.engine
        org_id = await org_with_sender(engine)
        await synced(engine, W, *LISTING)
        [queued] = await queue(engine, org_id, new(USER, "order_update"))
        assert queued.message is not None
        message_id = queued.message["id"]
        await change(engine, W, "order_update", status="PAUSED")

        assert await dispatcher.run_once() == 0
        held = await message(engine, message_id)
        assert (held["status"], held["waiting_reason"], held["attempts"]) == (
            "QUEUED",
            "template_paused",
            0,
        )
        assert held["next_attempt_at"] > clock.now
        assert await dispatcher.run_once() == 0, "not looked at again while it waits"
        assert provider.sent == []

        await change(engine, W, "order_update", status="APPROVED")
        released = await message(engine, message_id)
        assert released["waiting_reason"] is None
        assert await dispatcher.run_once() == 1
        assert (await message(engine, message_id))["status"] == "ACCEPTED"
        assert await event_types(engine, message_id) == [
            "queued",
            "template_paused",
            "template_approved",
            "claimed",
            "accepted",
        ]


@pytest.mark.parametrize(
    ("status", "code"),
    [("DISABLED", "template_disabled"), ("REJECTED", "template_not_approved")],
)
async def test_a_template_no_longer_approved_fails_its_waiting_messages(
    database_url: str, clock: Clock, status: str, code: str
) -> None:
    provider = Recording()
    async with dispatcher_for(make_settings(database_url), provider, clock) as dispatcher:
        engine = dispatcher.engine
        org_id = await org_with_sender(engine)
        await synced(engine, W, *LISTING)
        [queued] = await queue(engine, org_id, new(USER, "order_update"))
        assert queued.message is not None
        await change(engine, W, "order_update", status=status)
        assert await dispatcher.run_once() == 0
        failed = await message(engine, queued.message["id"])
        assert (failed["status"], failed["error_code"], failed["dead_lettered"]) == (
            "FAILED",
            code,
            True,
        )
        assert failed["attempts"] == 0
        assert provider.sent == []


async def test_an_opt_out_since_queueing_fails_marketing_but_not_utility(
    database_url: str, clock: Clock
) -> None:
    provider = Recording()
    async with dispatcher_for(make_settings(database_url), provider, clock) as dispatcher:
        engine = dispatcher.engine
        org_id = await org_with_sender(engine)
        await synced(engine, W, *LISTING)
        promo, utility = await queue(
            engine, org_id, new(USER, "promo_offer"), new(USER, "order_update")
        )
        await opt_out(engine, org_id, USER)
        await dispatcher.run_once()
        assert promo.message is not None
        assert utility.message is not None
        failed = await message(engine, promo.message["id"])
        assert (failed["status"], failed["error_code"], failed["dead_lettered"]) == (
            "FAILED",
            "marketing_opted_out",
            False,
        )
        assert (await message(engine, utility.message["id"]))["status"] == "ACCEPTED"
        assert [m.to for m in provider.sent] == [USER]


async def test_meta_131050_fails_the_message_and_opts_the_recipient_out(
    database_url: str, clock: Clock
) -> None:
    stopped = ProviderError(code="131050", title="User stopped marketing", message="stopped")
    provider = Recording({USER: stopped})
    async with dispatcher_for(make_settings(database_url), provider, clock) as dispatcher:
        engine = dispatcher.engine
        org_id = await org_with_sender(engine)
        [queued] = await queue(engine, org_id, new(USER, "promo_offer"))
        assert queued.message is not None
        await dispatcher.run_once()
        failed = await message(engine, queued.message["id"])
        assert (failed["status"], failed["error_code"], failed["dead_lettered"]) == (
            "FAILED",
            "marketing_opted_out",
            False,
        )
        assert "131050" in (failed["error_details"] or "")
        record = await consent_of(engine, org_id, USER)
        assert (record["status"], record["marketing_opt_out"]) == ("granted", True)
        [*_, last] = await history_of(engine, org_id, USER)
        assert (last["source"], last["marketing_opt_out"]) == ("meta:131050", True)


async def test_a_failed_status_with_131050_opts_the_recipient_out(db_engine: AsyncEngine) -> None:
    org_id = await new_org(db_engine, USER)
    async with db_engine.begin() as conn:
        sender_id = await insert_sender(conn, org_id, phone_number_id="8000002", waba_id=W)
        message_id = await insert_message(
            conn, org_id=org_id, wamid="wamid.STOPPED", to=USER, sender_id=sender_id
        )
    stopped = meta.error(131050, "User's marketing messages are stopped")
    status = meta.status("wamid.STOPPED", "failed", errors=[stopped])
    body = meta.envelope(statuses=[status], phone_number_id="8000002")
    async with db_engine.begin() as conn:
        await intake.process(conn, body, now=utcnow())
    failed = await message(db_engine, message_id)
    assert (failed["status"], failed["error_code"], failed["dead_lettered"]) == (
        "FAILED",
        "marketing_opted_out",
        False,
    )
    assert (await consent_of(db_engine, org_id, USER))["marketing_opt_out"] is True
