"""Reconciliation end to end: the whole service served over loopback with its dispatcher running,
and a fake Meta that takes a send, drops the connection before answering, then posts the send's
signed status webhooks (with its `biz_opaque_callback_data`) to the service."""

from __future__ import annotations

import meta_payloads as meta
from fake_meta import drop
from helpers import TEMPLATE, eventually
from served_service import PHONE, Service, read, service


async def queue_dropped(svc: Service) -> tuple[str, str]:
    """A template queued over HTTP whose first send the fake takes and never answers."""
    svc.fake.script(PHONE, drop())
    response = await svc.client.post(
        "/v1/messages", json={"to": PHONE, "template": TEMPLATE}, headers=svc.auth
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]

    async def unknown() -> bool:
        return bool((await read(svc, message_id))["waiting_reason"] == "send_unknown")

    await eventually(unknown)
    [request] = svc.fake.received.requests_for(PHONE.lstrip("+"))
    assert request.wamid is not None
    assert request.body["biz_opaque_callback_data"] == message_id
    return message_id, request.wamid


async def test_statuses_naming_a_dropped_send_reconcile_it_and_it_is_sent_once(
    database_url: str,
) -> None:
    async with service(database_url, reconcile_s=60.0) as svc:
        message_id, wamid = await queue_dropped(svc)
        cancel = await svc.client.post(f"/v1/messages/{message_id}/cancel", headers=svc.auth)
        assert (cancel.status_code, cancel.json()["error"]["code"]) == (409, "not_cancellable")

        for value in ("sent", "delivered", "read"):
            status = meta.status(wamid, value, callback_data=message_id)
            assert await svc.fake.send_statuses([status]) == 200

        final = await read(svc, message_id)
        assert (final["status"], final["provider_message_id"]) == ("READ", wamid)
        assert (final["attempts"], final["waiting_reason"], final["error"]) == (1, None, None)
        types = [event["type"] for event in (await read(svc, message_id, "/events"))["items"]]
        assert types[-5:] == [
            "send_unknown",
            "reconciled",
            "status.sent",
            "status.delivered",
            "status.read",
        ]
        assert len(svc.fake.received.requests_for(PHONE.lstrip("+"))) == 1


async def test_a_dropped_send_with_no_status_is_sent_again_after_the_wait(
    database_url: str,
) -> None:
    async with service(database_url, reconcile_s=0.5) as svc:
        message_id, first_wamid = await queue_dropped(svc)

        async def accepted() -> bool:
            return bool((await read(svc, message_id))["status"] == "ACCEPTED")

        await eventually(accepted)
        resent = await read(svc, message_id)
        requests = svc.fake.received.requests_for(PHONE.lstrip("+"))
        assert len(requests) == 2
        assert resent["attempts"] == 2
        assert resent["provider_message_id"] == requests[1].wamid != first_wamid
