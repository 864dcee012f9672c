"""The fake Meta Graph API's status webhooks (signed, batched, retried; posted on demand) and the
command that runs it as its own process, over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fake_meta import FakeMeta, meta_error, running_fake_meta
from fake_meta_helpers import MESSAGES, PHONE, TOKEN, send_body
from helpers import free_port
from meta_payloads import PHONE_NUMBER_ID, status

SECRET = "app-secret"


class WebhookReceiver:
    """The service's webhook endpoint, played by a test: checks each signature with the app
    secret, can fail the first deliveries, and keeps what it accepted."""

    def __init__(self, fail_first: int = 0) -> None:
        self.app = Starlette(routes=[Route("/webhooks/whatsapp", self._post, methods=["POST"])])
        self.bodies: list[bytes] = []  # every delivery, failed or not
        self.envelopes: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._fail_first = fail_first
        self._arrived = asyncio.Event()

    async def _post(self, request: Request) -> Response:
        raw = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-hub-signature-256", ""), expected):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.bodies.append(raw)
        self._arrived.set()
        if len(self.bodies) <= self._fail_first:
            return Response(status_code=500)
        self.envelopes.append(orjson.loads(raw))
        return Response(status_code=200)

    @property
    def statuses(self) -> list[dict[str, Any]]:
        return [
            item
            for envelope in self.envelopes
            for entry in envelope["entry"]
            for change in entry["changes"]
            for item in change["value"].get("statuses", [])
        ]

    async def wait_for(self, condition: Any) -> None:
        """Waits until `condition()` holds; the guard only stops a broken test from hanging."""
        async with asyncio.timeout(10):
            while not condition():
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    async with running_fake_meta(receiver.app) as base_url:
        yield receiver, base_url + "/webhooks/whatsapp"


async def test_accepted_sends_are_followed_by_signed_batched_status_webhooks(
    receiver: tuple[WebhookReceiver, str],
) -> None:
    hook, url = receiver
    fake = FakeMeta(
        token=TOKEN, webhook_url=url, app_secret=SECRET, auto_statuses=True, status_batch_size=2
    )
    fake.script("+33600000002", meta_error(131026))
    async with running_fake_meta(fake) as base_url, httpx.AsyncClient(base_url=base_url) as c:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for to in ["+33600000001", "+33600000002", "+33600000003"]:
            await c.post(MESSAGES, json=send_body(to), headers=headers)
        await hook.wait_for(lambda: len(hook.statuses) == 6)

    assert hook.bad_signatures == 0
    assert all(len(e["entry"][0]["changes"][0]["value"]["statuses"]) <= 2 for e in hook.envelopes)
    assert hook.envelopes[0]["object"] == "whatsapp_business_account"
    metadata = hook.envelopes[0]["entry"][0]["changes"][0]["value"]["metadata"]
    assert metadata["phone_number_id"] == PHONE_NUMBER_ID
    by_wamid: dict[str, list[str]] = {}
    for item in hook.statuses:
        by_wamid.setdefault(item["id"], []).append(item["status"])
        assert item["recipient_id"] in ("33600000001", "33600000003")
    assert set(by_wamid) == set(fake.received.wamids)
    assert all(sorted(values) == ["delivered", "read", "sent"] for values in by_wamid.values())
    assert fake.summary()["webhooks"]["posted"] == len(hook.envelopes)


async def test_send_statuses_posts_one_signed_envelope_now(
    receiver: tuple[WebhookReceiver, str],
) -> None:
    hook, url = receiver
    fake = FakeMeta(token=TOKEN, webhook_url=url, app_secret=SECRET)
    statuses = [status("wamid.X", "read"), status("wamid.Y", "failed", errors=[])]
    async with running_fake_meta(fake):
        answer = await fake.send_statuses(statuses)

    assert answer == 200
    assert hook.statuses == statuses
    assert hook.bad_signatures == 0


async def test_send_statuses_reports_the_receivers_refusal() -> None:
    hook = WebhookReceiver()
    async with running_fake_meta(hook.app) as base_url:
        fake = FakeMeta(token=TOKEN, webhook_url=base_url + "/webhooks/whatsapp", app_secret="no")
        async with running_fake_meta(fake):
            answer = await fake.send_statuses([status("wamid.X", "sent")])
    assert answer == 401
    assert hook.bad_signatures == 1


async def test_status_webhooks_are_retried_after_a_server_error() -> None:
    hook = WebhookReceiver(fail_first=1)
    async with running_fake_meta(hook.app) as base_url:
        fake = FakeMeta(
            token=TOKEN,
            webhook_url=base_url + "/webhooks/whatsapp",
            app_secret=SECRET,
            auto_statuses=True,
        )
        async with running_fake_meta(fake) as graph_url, httpx.AsyncClient() as c:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            await c.post(graph_url + MESSAGES, json=send_body(), headers=headers)
            await hook.wait_for(lambda: len(hook.statuses) == 3)

    assert len(hook.bodies) == 2
    assert hook.bodies[0] == hook.bodies[1]
    assert [s["status"] for s in hook.statuses] == ["sent", "delivered", "read"]
    counts = fake.summary()["webhooks"]
    assert (counts["posted"], counts["failed_attempts"], counts["given_up"]) == (1, 1, 0)


def test_webhooks_need_an_app_secret_and_automatic_statuses_a_webhook_url() -> None:
    with pytest.raises(ValueError, match="app_secret"):
        FakeMeta(webhook_url="http://127.0.0.1:9/hook")
    with pytest.raises(ValueError, match="webhook_url"):
        FakeMeta(app_secret=SECRET, auto_statuses=True)


async def test_send_statuses_needs_a_webhook_url() -> None:
    fake = FakeMeta(token=TOKEN)
    with pytest.raises(RuntimeError, match="webhook_url"):
        await fake.send_statuses([status("wamid.X", "sent")])


async def test_the_fake_runs_as_its_own_process_for_benchmarks() -> None:
    port = free_port()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    script = Path(__file__).with_name("fake_meta.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), "--port", str(port), "--token", TOKEN
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            async with asyncio.timeout(20):
                while True:
                    try:
                        await c.get("/_fake/requests")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            await c.post("/_fake/script", json={"to": PHONE, "steps": [{"kind": "hang"}]})
            with pytest.raises(httpx.ReadTimeout):
                await c.post(MESSAGES, json=send_body(), headers=auth, timeout=0.2)
            accepted = await c.post(MESSAGES, json=send_body(), headers=auth)
            report = (await c.get("/_fake/requests")).json()
    finally:
        # A request still hanging must not keep the process from stopping.
        process.terminate()
        async with asyncio.timeout(20):
            await process.wait()
    assert accepted.status_code == 200
    assert (report["total"], report["accepted"]) == (2, 1)
