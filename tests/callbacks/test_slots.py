"""The slots: per-host and global limits, hosts taking turns, and which endpoints a claim leaves
out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from wa_outbound.callbacks.claims import Claimed, Endpoint
from wa_outbound.callbacks.slots import Slots, host_of


def delivery(url: str, endpoint_id: uuid.UUID | None = None) -> Claimed:
    endpoint_id = endpoint_id or uuid.uuid4()
    return Claimed(
        id=uuid.uuid4(),
        endpoint_id=endpoint_id,
        event_seq=1,
        message_id=None,
        attempt=1,
        worker="w",
        event_id=uuid.uuid4(),
        event_type="message.sent",
        occurred_at=datetime.now(UTC),
        data="{}",
        endpoint=Endpoint(endpoint_id, url, "plain:whsec_AA==", None, None),
    )


def test_a_busy_host_keeps_its_slots_and_the_others_take_turns() -> None:
    started: list[Claimed] = []
    slots = Slots(concurrency=4, per_host=2, saturated_at=5, start=started.append)
    slow = uuid.uuid4()
    for _ in range(6):
        slots.add(delivery("https://slow.example/hook", slow))
    assert len(started) == 2  # the slow host's own limit
    others = [delivery(f"https://app{i}.example/") for i in range(3)]
    for d in others:
        slots.add(d)
    assert started[2:] == others[:2]  # the global limit: 4
    assert slots.saturated_endpoints() == [slow]  # 6 held >= 5
    assert slots.busy() == 2 + 1 + 1 + 1  # the slow host counts up to its own limit
    # One of the other hosts finishes: the free global slot goes to a host with a free slot.
    slots.done(others[0])
    assert started[4] == others[2]
    # The slow host finishes one: it starts its next one, and still holds 5.
    assert slots.done(started[0]) is False
    assert started[5].url == "https://slow.example/hook"
    # Another: below its saturation now, its endpoint may be claimed again.
    assert slots.done(started[1]) is True
    assert slots.saturated_endpoints() == []


def test_queued_deliveries_are_given_back_at_shutdown() -> None:
    started: list[Claimed] = []
    slots = Slots(concurrency=1, per_host=1, saturated_at=10, start=started.append)
    ds = [delivery("https://a.example/") for _ in range(3)]
    for d in ds:
        slots.add(d)
    assert started == ds[:1]
    assert slots.take_queued() == ds[1:]
    assert slots.held == 1


def test_the_host_key_is_scheme_host_and_port() -> None:
    assert host_of("https://a.example/x") == host_of("https://a.example/y?z")
    assert host_of("https://a.example/") != host_of("https://a.example:8443/")
    assert host_of("http://a.example/") != host_of("https://a.example/")
