"""Tolerant reading of Meta's webhook bodies (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import meta_payloads as meta
from wa_outbound.webhooks.payload import parse, timestamp


def test_statuses_are_read_with_their_timestamp_error_and_recipient() -> None:
    failed = meta.status(
        "wamid.A",
        "failed",
        timestamp=1_780_000_000,
        errors=[meta.error(131026, "Message undeliverable", "Msg", "Unable to deliver")],
    )
    content = parse(meta.envelope(statuses=[meta.status("wamid.B", "read"), failed]))
    read, fail = content.statuses
    assert (read.provider_message_id, read.status, read.recipient_id) == (
        "wamid.B",
        "read",
        "33612345678",
    )
    assert read.error is None
    assert fail.at == datetime.fromtimestamp(1_780_000_000, UTC)
    assert fail.error == {
        "code": "131026",
        "title": "Message undeliverable",
        "message": "Msg",
        "details": "Unable to deliver",
    }


def test_missing_optional_fields_and_unknown_fields_are_tolerated() -> None:
    item: dict[str, Any] = {"id": "wamid.C", "status": "played", "new_field": {"x": 1}}
    content = parse(meta.envelope(statuses=[item]))
    [update] = content.statuses
    assert (update.status, update.at, update.recipient_id, update.error) == (
        "played",
        None,
        None,
        None,
    )
    assert not content.unused


def test_errors_without_error_data_keep_what_is_there() -> None:
    item = meta.status("wamid.D", "failed", errors=[{"code": 131049, "title": "Not delivered"}])
    [update] = parse(meta.envelope(statuses=[item])).statuses
    assert update.error == {
        "code": "131049",
        "title": "Not delivered",
        "message": None,
        "details": None,
    }


@pytest.mark.parametrize(
    "item",
    [
        {"status": "sent"},
        {"id": "", "status": "sent"},
        {"id": 42, "status": "sent"},
        {"id": "w" * 129, "status": "sent"},
        {"id": "wamid.E"},
        {"id": "wamid.E", "status": ["sent"]},
    ],
)
def test_a_status_without_a_usable_id_or_value_is_counted_not_applied(item: Any) -> None:
    body = meta.envelope(statuses=[item])
    body["entry"][0]["changes"][0]["value"]["statuses"].append("junk")
    content = parse(body)
    assert content.statuses == []
    assert content.unused == {"malformed_status": 1}


def test_inbound_messages_give_the_sender_in_e164() -> None:
    value = meta.inbound_text("+33612345678", "hello")
    value["messages"].append({"from": "abc"})
    content = parse(meta.envelope(value_extra=value))
    [inbound] = content.inbound
    assert inbound.phone == "+33612345678"
    assert inbound.at is not None
    assert content.unused == {"malformed_message": 1}


def test_other_fields_and_value_errors_are_counted() -> None:
    body = meta.envelope(field="message_echoes", value_extra={"event": "X"})
    body["entry"].append(
        meta.envelope(value_extra={"errors": [meta.error(131000, "Oops")]})["entry"][0]
    )
    content = parse(body)
    assert content.unused == {"other_field": 1, "value_error": 1}
    assert content.value_errors[0]["code"] == "131000"


@pytest.mark.parametrize("body", [{}, {"entry": "x"}, {"entry": [{"changes": {}}]}, {"entry": [1]}])
def test_bodies_of_unexpected_shape_yield_nothing(body: dict[str, Any]) -> None:
    content = parse(body)
    assert (content.statuses, content.inbound) == ([], [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1780000000", datetime.fromtimestamp(1_780_000_000, UTC)),
        (1_780_000_000, datetime.fromtimestamp(1_780_000_000, UTC)),
        ("1780000000.5", datetime.fromtimestamp(1_780_000_000.5, UTC)),
        ("soon", None),
        ("", None),
        ("1e400", None),
        ("nan", None),
        (True, None),
        (None, None),
    ],
)
def test_timestamps_are_unix_seconds_or_nothing(value: Any, expected: datetime | None) -> None:
    assert timestamp(value) == expected
