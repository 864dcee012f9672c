"""The body of a callback: the event's stored JSON text put in as it is, the message's
`sequence` added as the last member of `data`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from wa_outbound.events.outgoing import body

EVENT_ID = uuid.UUID("6f1c7a52-3a57-4b8e-9f55-0d6a1c2b9e01")
AT = datetime(2026, 12, 2, 10, 0, 1, 250_000, tzinfo=UTC)


def _body(data: str, message_id: uuid.UUID | None) -> bytes:
    return body(
        event_id=EVENT_ID,
        seq=42,
        type="message.sent",
        occurred_at=AT,
        data=data,
        message_id=message_id,
    )


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            '{"message": {"id": "m1", "status": "SENT"}}',
            {"message": {"id": "m1", "status": "SENT"}},
        ),
        (' {"a":1} \n', {"a": 1}),
        ("{}", {}),
        ("{ }", {}),
    ],
)
def test_a_message_event_gets_its_sequence_last(stored: str, expected: dict[str, object]) -> None:
    content = _body(stored, uuid.uuid4())
    decoded = orjson.loads(content)
    assert decoded == {
        "id": str(EVENT_ID),
        "type": "message.sent",
        "timestamp": "2026-12-02T10:00:01.250000Z",
        "data": {**expected, "sequence": 42},
    }
    assert list(decoded["data"])[-1] == "sequence"


def test_other_events_carry_their_data_as_stored() -> None:
    stored = '{"consent": {"to": "+33612345678", "opted_out": true}}'
    content = _body(stored, None)
    assert content.endswith(b',"data":' + stored.encode() + b"}")
    assert "sequence" not in orjson.loads(content)["data"]


def test_the_same_event_gives_the_same_bytes() -> None:
    message_id = uuid.uuid4()
    stored = '{"message": {"id": "m1", "text": "caf\\u00e9 \\"quoted\\""}}'
    assert _body(stored, message_id) == _body(stored, message_id)
    assert orjson.loads(_body(stored, message_id))["data"]["message"]["text"] == 'café "quoted"'
