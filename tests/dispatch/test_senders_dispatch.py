"""Sending from several senders: every request goes to its sender's number with its token."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import meta_payloads as meta
from cloud_app import TOKEN, cloud_app
from factories import insert_sender
from helpers import ADMIN, TEMPLATE, create_org_with_key, eventually, grant
from wa_outbound.db.schema import sender

pytestmark = pytest.mark.asyncio


async def test_two_orgs_with_two_senders_each_send_with_the_right_number_and_token(
    postgres_url: str,
) -> None:
    async with cloud_app(postgres_url, dispatch_batch_size=100) as app:
        app.fake.add_number(meta.PHONE_NUMBER_ID, token=TOKEN, waba_id="waba-shared")
        plan: dict[str, tuple[dict[str, str], list[str]]] = {}
        token_of: dict[str, str] = {}
        for org in ("a", "b"):
            org_id, auth = await create_org_with_key(app.client, org)
            quota = await app.client.put(
                "/v1/rate-limits/whatsapp/quota",
                json={"limit": 10_000, "messages_per_second": 1000},
                headers={**ADMIN, "X-Org-Id": org_id},
            )
            assert quota.status_code == 200, quota.text
            ids = []
            for n in range(2):
                number, token = (
                    f"77{org}{n}".replace("a", "1").replace("b", "2"),
                    f"tok-{org}-{n}-xyz",
                )
                app.fake.add_number(number, token=token, waba_id=f"waba-{org}")
                created = await app.client.post(
                    "/v1/senders",
                    json={
                        "phone_number_id": number,
                        "waba_id": f"waba-{org}",
                        "access_token": token,
                        "messages_per_second": 1000,
                    },
                    headers=auth,
                )
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
                token_of[number] = token
            plan[org_id] = (auth, ids)

        expected: dict[str, str] = {}  # recipient -> number
        sends = []
        for index in range(1000):
            org_id = list(plan)[index % 2]
            auth, ids = plan[org_id]
            sender_index = (index // 2) % 2
            to = f"+3361{index:07d}"
            expected[to.lstrip("+")] = f"77{1 if index % 2 == 0 else 2}{sender_index}"
            sends.append((auth, to, ids[sender_index]))
        for auth, to, _ in sends:
            await grant(app.client, auth, to)
        for start in range(0, 1000, 250):
            chunk = sends[start : start + 250]
            by_auth: dict[str, list[dict[str, object]]] = {}
            for auth, to, sender_id in chunk:
                by_auth.setdefault(auth["Authorization"], []).append(
                    {"to": to, "template": TEMPLATE, "from": sender_id}
                )
            responses = await asyncio.gather(
                *(
                    app.client.post(
                        "/v1/messages/batch",
                        json={"messages": items},
                        headers={"Authorization": key},
                    )
                    for key, items in by_auth.items()
                )
            )
            assert all(r.status_code == 200 for r in responses)

        await eventually(lambda: app.fake.received.accepted >= 1000, timeout_s=60)
        requests = [r for r in app.fake.received.requests if r.status == 200]
        assert len(requests) == 1000
        by_number = Counter(r.phone_number_id for r in requests)
        assert by_number == {"7710": 250, "7711": 250, "7720": 250, "7721": 250}
        for request in requests:
            assert request.phone_number_id == expected[request.to]
            assert request.authorization == f"Bearer {token_of[request.phone_number_id]}"
        assert app.fake.received.duplicates() == {}


async def test_a_token_no_key_decrypts_holds_its_senders_messages_only(postgres_url: str) -> None:
    async with cloud_app(postgres_url) as app:
        app.fake.add_number(meta.PHONE_NUMBER_ID, token=TOKEN, waba_id="waba-shared")
        app.fake.add_number("5001", token="token-good-5001", waba_id="waba-5")
        app.fake.add_number("5002", token="token-lost-5002", waba_id="waba-5")
        org_id, auth = await create_org_with_key(app.client)
        engine = app.state["engine"]
        async with engine.begin() as conn:
            good = await insert_sender(
                conn, org_id, phone_number_id="5001", waba_id="waba-5", token="token-good-5001"
            )
            sealed = await insert_sender(conn, org_id, phone_number_id="5002", waba_id="waba-5")
            # Sealed by a key this replica does not have (a rotation that has not reached it).
            await conn.execute(
                sender.update()
                .where(sender.c.id == sealed)
                .values(access_token="fernet:gAAAAABnot-a-token-of-ours")
            )
        await grant(app.client, auth, "+33611111111")
        ids = {}
        for name, sender_id in (("good", good), ("sealed", sealed)):
            queued = await app.client.post(
                "/v1/messages",
                json={"to": "+33611111111", "template": TEMPLATE, "from": str(sender_id)},
                headers=auth,
            )
            assert queued.status_code == 202, queued.text
            ids[name] = queued.json()["id"]

        async def read(name: str) -> dict[str, object]:
            found = await app.client.get(f"/v1/messages/{ids[name]}", headers=auth)
            return dict(found.json())

        async def settled() -> bool:
            good_now, sealed_now = await read("good"), await read("sealed")
            return (
                good_now["status"] == "ACCEPTED"
                and sealed_now["next_attempt_at"] != (sealed_now["created_at"])
            )

        await eventually(settled)
        held = await read("sealed")
        assert (held["status"], held["attempts"], held["error"]) == ("QUEUED", 0, None)
        events = await app.client.get(f"/v1/messages/{ids['sealed']}/events", headers=auth)
        released = [e for e in events.json()["items"] if e["type"] == "released"]
        assert released[-1]["details"]["reason"] == "token_unreadable"
        assert all(r.phone_number_id != "5002" for r in app.fake.received.requests)
