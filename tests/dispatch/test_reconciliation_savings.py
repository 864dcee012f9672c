"""What reconciliation saves: a fake Meta that takes every send but drops the connection before
answering one in five, and posts every accepted send's statuses to the service. Without
reconciliation (statuses without the callback data, resent after the wait as any retry), each
dropped send is a duplicate; with it, none is."""

from __future__ import annotations

from fake_meta import drop
from helpers import TEMPLATE, eventually
from served_service import Service, service

MESSAGES = 100
DROP_EVERY = 5


async def duplicates_after_run(svc: Service, *, echo: bool) -> int:
    """Queue MESSAGES templates, one send in DROP_EVERY dropped; the duplicate sends once
    every message is READ."""
    svc.fake.auto_statuses = True
    svc.fake.echo_callback_data = echo
    phones = [f"+3361{i:07d}" for i in range(MESSAGES)]
    for phone in phones[::DROP_EVERY]:
        svc.fake.script(phone, drop())
    for phone in phones:
        response = await svc.client.put(
            f"/v1/consents/{phone}", json={"status": "granted"}, headers=svc.auth
        )
        assert response.status_code == 200, response.text
    items = [{"to": phone, "template": TEMPLATE} for phone in phones]
    response = await svc.client.post(
        "/v1/messages/batch", json={"messages": items}, headers=svc.auth
    )
    assert response.status_code == 200, response.text

    async def all_read() -> bool:
        page = await svc.client.get(
            "/v1/messages", params={"status": "READ", "limit": 500}, headers=svc.auth
        )
        return len(page.json()["items"]) == MESSAGES

    await eventually(all_read, timeout_s=60)
    return sum(n - 1 for n in svc.fake.received.duplicates().values())


# Longer than the receipt sweep's 5 s: a status that reaches the service before the dropped send's
# outcome is written waits for the sweep, which must come before the resend (as with the 60 s
# default). A 1 s wait let a loaded machine resend 12 of the 20.
RECONCILE_S = 6.0


async def test_reconciliation_turns_dropped_sends_into_no_duplicates(postgres_url: str) -> None:
    async with service(postgres_url, reconcile_s=RECONCILE_S) as svc:
        without = await duplicates_after_run(svc, echo=False)
    async with service(postgres_url, reconcile_s=RECONCILE_S) as svc:
        with_reconciliation = await duplicates_after_run(svc, echo=True)
    print(
        f"\nreconciliation: {MESSAGES} messages, {MESSAGES // DROP_EVERY} dropped sends: "
        f"{without} duplicates without the callback data, {with_reconciliation} with it"
    )
    assert without == MESSAGES // DROP_EVERY
    assert with_reconciliation == 0
