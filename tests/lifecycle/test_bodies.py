"""A stored webhook body loses only what is about the erased contact and the erasing org: on
its own numbers everything about the user; on the shared number the statuses of its messages
and the inbound messages that reply to them or to nothing; another org's parts stay."""

from __future__ import annotations

from typing import Any

import orjson

import meta_payloads as meta
from wa_outbound.lifecycle.bodies import Scope, redact_body
from wa_outbound.lifecycle.redaction import Redactor

USER = "+33612345678"
OWN, SHARED = "5550000777", "106540352242922"


def body(number: str, value: dict[str, Any]) -> bytes:
    return orjson.dumps(meta.envelope(value_extra=value, phone_number_id=number))


def scope() -> Scope:
    return Scope(own_numbers={OWN}, shared_numbers={SHARED}, wamids={"wamid.OURS"})


def test_everything_about_the_user_on_the_orgs_own_number_goes() -> None:
    raw = body(OWN, meta.inbound_text(USER, "call me", name="Jeanne"))
    out = redact_body(raw, Redactor(b"k" * 32, USER), scope())
    assert out is not None
    for needle in (b"33612345678", b"call me", b"Jeanne"):
        assert needle not in out
    value = orjson.loads(out)["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["type"] == "text"
    assert value["messages"][0]["id"] == "wamid.INBOUND"


def test_on_the_shared_number_only_the_orgs_parts_go() -> None:
    theirs = meta.status("wamid.THEIRS", "delivered")
    ours = meta.status("wamid.OURS", "delivered")
    reply_to_them = meta.inbound_reply(USER, "to them", replied_wamid="wamid.THEIRS")
    raw = body(SHARED, {"statuses": [theirs, ours], **reply_to_them})
    out = redact_body(raw, Redactor(b"k" * 32, USER), scope())
    assert out is not None
    value = orjson.loads(out)["entry"][0]["changes"][0]["value"]
    assert value["statuses"][0] == theirs
    assert value["statuses"][1]["recipient_id"].startswith("redacted:")
    assert value["messages"][0]["text"]["body"] == "to them"  # another org's conversation
    assert value["contacts"][0]["wa_id"] == USER[1:]


def test_a_body_about_someone_else_is_left_alone() -> None:
    raw = body(OWN, meta.inbound_text("+33700000000", "hello"))
    assert redact_body(raw, Redactor(b"k" * 32, USER), scope()) is None


def test_a_body_that_is_not_json_loses_the_number() -> None:
    out = redact_body(b"not json 33612345678", Redactor(b"k" * 32, USER), scope())
    assert out is not None
    assert b"33612345678" not in out
