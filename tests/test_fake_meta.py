"""The fake Meta Graph API, over loopback: answers, scripts, records and control endpoints (its
status webhooks and its process: test_fake_meta_webhooks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from fake_meta import (
    FakeMeta,
    accept,
    delay,
    hang,
    http_status,
    meta_error,
    running_fake_meta,
)
from fake_meta_helpers import MESSAGES, PHONE, TOKEN, send_body
from fake_meta_steps import step_from_json
from meta_payloads import PHONE_NUMBER_ID


@pytest.fixture
def fake() -> FakeMeta:
    return FakeMeta(token=TOKEN)


@pytest.fixture
async def graph(fake: FakeMeta) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the served fake, with the right token."""
    async with (
        running_fake_meta(fake) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        yield c


async def send(graph: httpx.AsyncClient, to: str = PHONE) -> httpx.Response:
    return await graph.post(MESSAGES, json=send_body(to))


def error_code(response: httpx.Response) -> int:
    code: int = response.json()["error"]["code"]
    return code


async def test_accepted_sends_get_unique_wamids_in_meta_shaped_answers(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    answers = [await send(graph) for _ in range(3)]
    text = await graph.post(MESSAGES, json=send_body(type="text", text={"body": "hi"}))

    assert [a.status_code for a in [*answers, text]] == [200, 200, 200, 200]
    first = answers[0].json()
    assert first["messaging_product"] == "whatsapp"
    assert first["contacts"] == [{"input": PHONE, "wa_id": PHONE[1:]}]
    assert first["messages"][0]["message_status"] == "accepted"
    wamids = [a.json()["messages"][0]["id"] for a in [*answers, text]]
    assert all(w.startswith("wamid.FAKE.") for w in wamids)
    assert len(set(wamids)) == 4
    assert fake.received.wamids == wamids
    assert fake.received.total == fake.received.count(PHONE) == 4


async def test_two_fakes_never_issue_the_same_wamid() -> None:
    wamids = []
    for fake in (FakeMeta(token=TOKEN), FakeMeta(token=TOKEN)):
        async with running_fake_meta(fake) as base_url, httpx.AsyncClient() as c:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            await c.post(base_url + MESSAGES, json=send_body(), headers=headers)
        wamids += fake.received.wamids
    assert len(set(wamids)) == 2


async def test_scripted_errors_come_in_order_then_sends_are_accepted(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script(PHONE, meta_error(131026, details="undeliverable"), http_status(500, "boom"))
    fake.script(PHONE, accept(), meta_error(131047, http_status=403))

    first, second, third, fourth, fifth = [await send(graph) for _ in range(5)]

    assert first.status_code == 400
    assert first.json()["error"]["code"] == 131026
    assert first.json()["error"]["error_data"]["details"] == "undeliverable"
    assert (second.status_code, second.text) == (500, "boom")
    assert third.status_code == 200
    assert (fourth.status_code, error_code(fourth)) == (403, 131047)
    assert fifth.status_code == 200
    assert [r.status for r in fake.received.requests_for(PHONE)] == [400, 500, 200, 403, 200]
    assert (await send(graph, "+33700000000")).status_code == 200


async def test_meta_error_with_retry_after_sends_the_header(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script(PHONE, meta_error(130429, http_status=429, retry_after=7), meta_error(131000))

    throttled, failed = await send(graph), await send(graph)

    assert (throttled.status_code, error_code(throttled)) == (429, 130429)
    assert throttled.headers["Retry-After"] == "7"
    assert "Retry-After" not in failed.headers


async def test_recipients_are_the_same_with_or_without_their_plus(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script("33612345678", http_status(502))

    assert (await send(graph, PHONE)).status_code == 502
    assert (await send(graph, "33612345678")).status_code == 200
    assert fake.received.count(PHONE) == fake.received.count("33612345678") == 2
    assert fake.received.duplicates() == {}


async def test_suffix_rule_answers_every_request_to_matching_numbers(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script_suffix("0500", http_status(500))

    answers = [await send(graph, to) for to in ["+33600000500", "+44700000500"] * 2]
    other = await send(graph, "+33600000501")

    assert [a.status_code for a in answers] == [500, 500, 500, 500]
    assert other.status_code == 200
    fake.script_suffix("0500")  # no steps: the rule is gone
    assert (await send(graph, "+33600000500")).status_code == 200


async def test_suffix_rule_cycles_through_its_steps(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script_suffix("77", meta_error(131000), accept())

    answers = [(await send(graph, "+3361234577")).status_code for _ in range(4)]

    assert answers == [400, 200, 400, 200]


async def test_suffix_rule_once_gives_each_number_its_steps_then_accepts(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script_suffix("0429", meta_error(130429), meta_error(130429), once=True)
    fake.script("+33600000429", http_status(503))

    first = [(await send(graph, "+33600000429")).status_code for _ in range(4)]
    second = [(await send(graph, "+33700000429")).status_code for _ in range(3)]

    # The number's own script comes before the rule.
    assert first == [503, 400, 400, 200]
    assert second == [400, 400, 200]


async def test_the_longest_matching_suffix_wins(fake: FakeMeta, graph: httpx.AsyncClient) -> None:
    fake.script_suffix("0", http_status(500))
    fake.script_suffix("00", http_status(502))

    assert (await send(graph, "+33600000000")).status_code == 502
    assert (await send(graph, "+33600000010")).status_code == 500


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
async def test_a_wrong_or_missing_token_is_refused_with_code_190(
    fake: FakeMeta, graph: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    graph.headers.pop("Authorization")

    response = await graph.post(MESSAGES, json=send_body(), headers=headers)

    assert (response.status_code, error_code(response)) == (401, 190)
    assert response.json()["error"]["type"] == "OAuthException"
    assert fake.received.wamids == []
    assert fake.received.requests[0].authorization == authorization


@pytest.mark.parametrize(
    "body",
    [
        send_body(messaging_product="sms"),
        {k: v for k, v in send_body().items() if k != "to"},
        send_body(to="+"),
        send_body(type="location", location={"latitude": 1, "longitude": 2}),
        send_body(type="text"),
        send_body(type="text", text={"body": ""}),
        send_body(type="text", text={"body": "x" * 4097}),
        send_body(template={"name": "order_update"}),
        send_body(template="order_update"),
        ["not", "an", "object"],
    ],
    ids=[
        "not whatsapp",
        "no to",
        "empty to",
        "unsupported type",
        "text without its object",
        "empty text",
        "text too long",
        "template without language",
        "template not an object",
        "not an object",
    ],
)
async def test_a_malformed_send_is_refused_with_code_100(
    fake: FakeMeta, graph: httpx.AsyncClient, body: Any
) -> None:
    response = await graph.post(MESSAGES, json=body)

    assert (response.status_code, error_code(response)) == (400, 100)
    assert fake.received.requests[0].status == 400


async def test_a_body_that_is_not_json_is_refused_with_code_100(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    response = await graph.post(MESSAGES, content=b"{not json")

    assert (response.status_code, error_code(response)) == (400, 100)
    assert fake.received.requests[0].body is None


async def test_an_unknown_phone_number_id_is_refused_when_one_is_configured() -> None:
    fake = FakeMeta(token=TOKEN, phone_number_id=PHONE_NUMBER_ID)
    async with running_fake_meta(fake) as base_url, httpx.AsyncClient(base_url=base_url) as c:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        known = await c.post(MESSAGES, json=send_body(), headers=headers)
        unknown = await c.post("/v21.0/999/messages", json=send_body(), headers=headers)
    assert known.status_code == 200
    assert (unknown.status_code, error_code(unknown)) == (400, 100)


async def test_a_delayed_answer_still_carries_an_accepted_send(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script(PHONE, delay(0.05))

    response = await send(graph)

    assert response.status_code == 200
    assert fake.received.wamids == [response.json()["messages"][0]["id"]]


async def test_a_hanging_send_outlasts_the_client_and_does_not_block_shutdown(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    fake.script(PHONE, hang())

    with pytest.raises(httpx.ReadTimeout):
        await graph.post(MESSAGES, json=send_body(), timeout=0.2)
    after = await send(graph)

    assert after.status_code == 200
    assert [r.status for r in fake.received.requests_for(PHONE)] == [0, 200]
    # Leaving the fixture stops the server while the hanging request still waits.


async def test_records_keep_the_latest_requests_and_count_them_all() -> None:
    fake = FakeMeta(token=TOKEN, max_records=2)
    async with running_fake_meta(fake) as base_url, httpx.AsyncClient(base_url=base_url) as c:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for to in ["+331000001", "+331000002", "+331000003"]:
            await c.post(MESSAGES, json=send_body(to), headers=headers)
    assert fake.received.total == 3
    assert [r.to for r in fake.received.requests] == ["331000002", "331000003"]
    assert fake.received.requests[0].body == send_body("+331000002")
    assert fake.received.requests[0].authorization == f"Bearer {TOKEN}"


def test_steps_travel_as_json_unchanged() -> None:
    steps = [accept(), meta_error(130429, 429, 3, "slow", "down"), http_status(502, "x")]
    steps += [delay(0.5), hang()]

    assert [step_from_json(orjson.loads(orjson.dumps(s.to_json()))) for s in steps] == steps
    with pytest.raises(ValueError, match="unknown step kind"):
        step_from_json({"kind": "explode"})
    with pytest.raises(TypeError):
        step_from_json({"kind": "delay", "minutes": 1})


async def test_control_endpoints_script_report_and_reset(
    fake: FakeMeta, graph: httpx.AsyncClient
) -> None:
    scripted = await graph.post(
        "/_fake/script", json={"to": PHONE, "steps": [meta_error(131026).to_json()]}
    )
    by_suffix = await graph.post(
        "/_fake/script", json={"suffix": "0500", "steps": [{"kind": "http_status", "status": 500}]}
    )
    refused = await graph.post("/_fake/script", json={"to": PHONE, "steps": [{"kind": "nope"}]})
    assert [scripted.status_code, by_suffix.status_code, refused.status_code] == [200, 200, 400]

    codes = [(await send(graph, to)).status_code for to in [PHONE, PHONE, PHONE, "+3360000500"]]
    report = (await graph.get("/_fake/requests")).json()

    assert codes == [400, 200, 200, 500]
    assert report == {
        "total": 4,
        "accepted": 2,
        "by_to": {PHONE[1:]: 3, "3360000500": 1},
        "duplicates": {PHONE[1:]: 2},
        "webhooks": None,
    }
    assert (await graph.post("/_fake/reset")).status_code == 200
    assert (await graph.get("/_fake/requests")).json()["total"] == 0
    assert (await send(graph, "+3360000500")).status_code == 200
    assert fake.received.requests_for("+3360000500")[0].status == 200


async def test_a_fake_can_be_served_again_after_it_stopped(fake: FakeMeta) -> None:
    for _ in range(2):
        async with running_fake_meta(fake) as base_url, httpx.AsyncClient() as c:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            await c.post(base_url + MESSAGES, json=send_body(), headers=headers)
    assert fake.received.total == 2
    assert len(set(fake.received.wamids)) == 2
