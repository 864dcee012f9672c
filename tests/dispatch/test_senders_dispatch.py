"""Sending from several senders: every request goes to its sender's number with its token."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import meta_payloads as meta
from cloud_app import TOKEN, cloud_app
from helpers import ADMIN, TEMPLATE, create_org_with_key, eventually, grant

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
