"""Meta's template webhooks keep the registry current, on SQLite and PostgreSQL: a status update
sets the status (REINSTATED and an UNPAUSE approve again, FLAGGED changes only the quality), a
quality update the quality; each change is a `template.updated` event for every organisation
with a sender on that WABA; a WABA no sender has is only counted."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import new_org
from factories import insert_sender
from template_helpers import callbacks_of, item, row, subscribe, synced
from wa_outbound.db.types import utcnow
from wa_outbound.webhooks import intake
from wa_outbound.webhooks.intake import Processed

W = "waba-hook"


def status_update(name: str, event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "message_template_id": 594425479261596,
        "message_template_name": name,
        "message_template_language": "en_US",
        "reason": None,
        **extra,
    }


def quality_update(name: str, score: str) -> dict[str, Any]:
    return {
        "previous_quality_score": "GREEN",
        "new_quality_score": score,
        "message_template_id": 594425479261596,
        "message_template_name": name,
        "message_template_language": "en_US",
    }


async def post(engine: AsyncEngine, *changes: tuple[str, Any], waba_id: str = W) -> Processed:
    async with engine.begin() as conn:
        return await intake.process(conn, meta.changes(*changes, entry_id=waba_id), now=utcnow())


@pytest.fixture
async def orgs(db_engine: AsyncEngine) -> tuple[str, str, str]:
    """Two orgs with a sender on W, one on another WABA; each subscribed to every event."""
    ids = []
    for n, waba_id in enumerate((W, W, "waba-elsewhere")):
        org_id = await new_org(db_engine)
        async with db_engine.begin() as conn:
            await insert_sender(conn, org_id, phone_number_id=f"300000{n}", waba_id=waba_id)
        await subscribe(db_engine, org_id)
        ids.append(org_id)
    await synced(db_engine, W, item("order_update"), item("promo", category="MARKETING"))
    return ids[0], ids[1], ids[2]


@pytest.mark.parametrize(
    ("first", "then", "expected"),
    [
        ({"event": "PAUSED", "other_info": {"title": "FIRST_PAUSE"}}, None, "PAUSED"),
        ({"event": "PAUSED"}, {"event": "REINSTATED"}, "APPROVED"),
        (
            {"event": "PAUSED"},
            {"event": "APPROVED", "other_info": {"title": "UNPAUSE"}},
            "APPROVED",
        ),
        ({"event": "DISABLED", "disable_info": {"disable_date": "1700000000"}}, None, "DISABLED"),
        ({"event": "REJECTED", "reason": "INCORRECT_CATEGORY"}, None, "REJECTED"),
    ],
)
async def test_a_status_update_sets_the_templates_status(
    db_engine: AsyncEngine,
    orgs: tuple[str, str, str],
    first: dict[str, Any],
    then: dict[str, Any] | None,
    expected: str,
) -> None:
    field = "message_template_status_update"
    for value in (first, then):
        if value is not None:
            done = await post(db_engine, (field, status_update("order_update", **value)))
            assert done.management[field, "applied"] == 1
    assert (await row(db_engine, W, "order_update"))["status"] == expected


async def test_flagged_changes_only_the_quality_and_quality_updates_apply(
    db_engine: AsyncEngine, orgs: tuple[str, str, str]
) -> None:
    await post(db_engine, ("message_template_status_update", status_update("promo", "FLAGGED")))
    flagged = await row(db_engine, W, "promo")
    assert (flagged["status"], flagged["quality"]) == ("APPROVED", "RED")
    await post(db_engine, ("message_template_quality_update", quality_update("promo", "YELLOW")))
    assert (await row(db_engine, W, "promo"))["quality"] == "YELLOW"


async def test_each_change_is_reported_to_every_org_with_a_sender_on_the_waba(
    db_engine: AsyncEngine, orgs: tuple[str, str, str]
) -> None:
    first, second, elsewhere = orgs
    before = len(await callbacks_of(db_engine, first, "template.updated"))
    await post(
        db_engine, ("message_template_status_update", status_update("order_update", "PAUSED"))
    )
    # The same event again changes nothing, and reports nothing.
    await post(
        db_engine, ("message_template_status_update", status_update("order_update", "PAUSED"))
    )
    for org_id in (first, second):
        events = await callbacks_of(db_engine, org_id, "template.updated")
        assert len(events) == before + 1
        data = events[-1]["data"]
        assert {k: data[k] for k in ("waba_id", "name", "language", "status", "category")} == {
            "waba_id": W,
            "name": "order_update",
            "language": "en_US",
            "status": "PAUSED",
            "category": "UTILITY",
        }
        assert set(data) == {
            "waba_id",
            "name",
            "language",
            "status",
            "category",
            "quality",
            "components",
            "updated_at",
        }
    assert await callbacks_of(db_engine, elsewhere, "template.updated") == []


async def test_a_template_unknown_to_the_registry_is_added_by_its_webhook(
    db_engine: AsyncEngine, orgs: tuple[str, str, str]
) -> None:
    value = status_update("brand_new", "APPROVED", message_template_category="MARKETING")
    await post(db_engine, ("message_template_status_update", value))
    created = await row(db_engine, W, "brand_new")
    assert (created["status"], created["category"]) == ("APPROVED", "MARKETING")


async def test_a_waba_no_sender_has_is_counted_and_changes_nothing(
    db_engine: AsyncEngine, orgs: tuple[str, str, str]
) -> None:
    field = "message_template_status_update"
    done = await post(db_engine, (field, status_update("order_update", "PAUSED")), waba_id="nope")
    assert done.unrouted == {field: 1}
    assert (await row(db_engine, W, "order_update"))["status"] == "APPROVED"


async def test_a_quality_update_for_an_unknown_template_adds_nothing(
    db_engine: AsyncEngine, orgs: tuple[str, str, str]
) -> None:
    """A quality alone says nothing of whether the template may be sent: no row that would
    refuse it."""
    done = await post(db_engine, ("message_template_quality_update", quality_update("x", "RED")))
    assert done.management["message_template_quality_update", "ignored"] == 1
    with pytest.raises(NoResultFound):
        await row(db_engine, W, "x")
