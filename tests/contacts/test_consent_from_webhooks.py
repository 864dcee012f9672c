"""Consent changed by what Meta posts, on SQLite and PostgreSQL: opt-out and opt-in keywords in
inbound texts and `user_preferences`, each for the organisation that owns the number (on the
shared number, only the organisation whose message it replies to); button replies and messages
without a phone number change nothing; every change is in the history."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import meta_payloads as meta
from dispatch_helpers import new_org
from factories import insert_message, insert_sender
from routing_helpers import shared_sender
from template_helpers import callbacks_of, consent_of, history_of, subscribe
from wa_outbound.contacts.keywords import DEFAULT_KEYWORDS, Keywords
from wa_outbound.db.schema import SHARED_SENDER_ID
from wa_outbound.db.types import utcnow
from wa_outbound.errors import NotFound
from wa_outbound.webhooks import intake

USER = "+33612345678"
NUMBER_A, NUMBER_B = "4000001", "4000002"


@pytest.fixture
async def orgs(db_engine: AsyncEngine) -> tuple[str, str]:
    """Two orgs that each own a number and have the user's consent; the shared number too."""
    ids = []
    for number in (NUMBER_A, NUMBER_B):
        org_id = await new_org(db_engine, USER)
        async with db_engine.begin() as conn:
            await insert_sender(conn, org_id, phone_number_id=number)
        ids.append(org_id)
    await shared_sender(db_engine)
    return ids[0], ids[1]


async def post(
    engine: AsyncEngine, number: str, value: dict[str, Any], *, field: str = "messages", **kw: Any
) -> None:
    body = meta.envelope(value_extra=value, field=field, phone_number_id=number)
    async with engine.begin() as conn:
        await intake.process(conn, body, now=utcnow(), **kw)


def text(body: str, **message: Any) -> dict[str, Any]:
    value = meta.inbound_text(USER, body, wamid=f"wamid.IN.{time.monotonic_ns()}")
    value["messages"][0].update(message)
    return value


def preference(value: str, phone: str = USER, category: str = "marketing_messages") -> Any:
    return {
        "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": "User"}}],
        "user_preferences": [
            {
                "wa_id": phone.lstrip("+"),
                "detail": "User requested to stop marketing messages",
                "category": category,
                "value": value,
                "timestamp": int(time.time()),
            }
        ],
    }


async def status(engine: AsyncEngine, org_id: str, phone: str = USER) -> Any:
    return (await consent_of(engine, org_id, phone))["status"]


async def test_keywords_change_consent_with_the_org_that_owns_the_number(
    db_engine: AsyncEngine, orgs: tuple[str, str]
) -> None:
    a, b = orgs
    await subscribe(db_engine, a, ["consent.changed"])
    await post(db_engine, NUMBER_A, text("  sToP \n"))
    assert (await status(db_engine, a), await status(db_engine, b)) == ("revoked", "granted")
    record = await consent_of(db_engine, a, USER)
    assert record["source"] == "keyword:STOP"
    await post(db_engine, NUMBER_A, text("STOP"))  # again: nothing changes, nothing is written
    await post(db_engine, NUMBER_A, text("Start"))
    assert await status(db_engine, a) == "granted"
    history = await history_of(db_engine, a, USER)
    assert [(h["status"], h["source"], h["actor"]) for h in history] == [
        ("granted", "test", "test"),
        ("revoked", "keyword:STOP", "webhook"),
        ("granted", "keyword:START", "webhook"),
    ]
    changed = await callbacks_of(db_engine, a, "consent.changed")
    assert [e["data"]["status"] for e in changed] == ["revoked", "granted"]


@pytest.mark.parametrize(
    "value",
    [
        text("stop please"),
        text("STOP", type="button", button={"text": "STOP", "payload": "STOP"}),
        {
            "messages": [
                {
                    "from_user_id": "US.13491208655302741918",
                    "id": "wamid.NOFROM",
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": "STOP"},
                }
            ]
        },
    ],
    ids=["other text", "button reply", "no from"],
)
async def test_what_is_not_a_keyword_text_from_a_phone_changes_nothing(
    db_engine: AsyncEngine, orgs: tuple[str, str], value: dict[str, Any]
) -> None:
    a, _ = orgs
    await post(db_engine, NUMBER_A, value)
    assert await status(db_engine, a) == "granted"
    assert len(await history_of(db_engine, a, USER)) == 1


async def test_on_the_shared_number_only_the_org_replied_to_is_changed(
    db_engine: AsyncEngine, orgs: tuple[str, str]
) -> None:
    a, b = orgs
    await post(db_engine, meta.PHONE_NUMBER_ID, text("STOP"))
    assert (await status(db_engine, a), await status(db_engine, b)) == ("granted", "granted")
    async with db_engine.begin() as conn:
        await insert_message(conn, org_id=b, wamid="wamid.OURS.B", sender_id=SHARED_SENDER_ID)
    await post(db_engine, meta.PHONE_NUMBER_ID, text("STOP", context={"id": "wamid.OURS.B"}))
    assert (await status(db_engine, a), await status(db_engine, b)) == ("granted", "revoked")


async def test_the_keywords_are_the_configured_ones(
    db_engine: AsyncEngine, orgs: tuple[str, str]
) -> None:
    a, _ = orgs
    custom = Keywords.of(["HALT"], ["GO"])
    await post(db_engine, NUMBER_A, text("stop"), keywords=custom)
    assert await status(db_engine, a) == "granted"
    await post(db_engine, NUMBER_A, text("halt"), keywords=custom)
    assert (await consent_of(db_engine, a, USER))["source"] == "keyword:HALT"
    assert DEFAULT_KEYWORDS.match("unsubscribe") == ("revoked", "UNSUBSCRIBE")
    assert DEFAULT_KEYWORDS.match("UNSTOP") == ("granted", "UNSTOP")


async def test_user_preferences_set_and_clear_the_marketing_opt_out(
    db_engine: AsyncEngine, orgs: tuple[str, str]
) -> None:
    a, b = orgs
    await post(db_engine, NUMBER_A, preference("stop"), field="user_preferences")
    record = await consent_of(db_engine, a, USER)
    assert (record["status"], record["marketing_opt_out"]) == ("granted", True)
    assert (await consent_of(db_engine, b, USER))["marketing_opt_out"] is False
    await post(db_engine, NUMBER_A, preference("resume"), field="user_preferences")
    assert (await consent_of(db_engine, a, USER))["marketing_opt_out"] is False
    [*_, last] = await history_of(db_engine, a, USER)
    assert (last["source"], last["from_marketing_opt_out"], last["marketing_opt_out"]) == (
        "meta:user_preferences",
        True,
        False,
    )
    other_category = preference("stop", category="something_else")
    await post(db_engine, NUMBER_A, other_category, field="user_preferences")
    assert (await consent_of(db_engine, a, USER))["marketing_opt_out"] is False


async def test_a_preference_for_a_phone_without_consent_creates_a_record_without_status(
    db_engine: AsyncEngine, orgs: tuple[str, str]
) -> None:
    a, _ = orgs
    stranger = "+33699999999"
    await post(db_engine, NUMBER_A, preference("stop", stranger), field="user_preferences")
    record = await consent_of(db_engine, a, stranger)
    assert (record["status"], record["marketing_opt_out"]) == (None, True)
    # On the shared number, a preference belongs to no org.
    await post(
        db_engine,
        meta.PHONE_NUMBER_ID,
        preference("stop", "+33688888888"),
        field="user_preferences",
    )
    with pytest.raises(NotFound):
        await consent_of(db_engine, a, "+33688888888")
