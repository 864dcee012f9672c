"""A claim reads each endpoint's URL and secrets once (PostgreSQL: on one row of the endpoint's
only), and every delivery it claims to that endpoint carries them, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import KEYRING, insert_endpoint, insert_event
from wa_outbound.callbacks import claims
from wa_outbound.db.types import utcnow


async def test_each_delivery_carries_its_own_endpoints_url_and_secrets(
    db_engine: AsyncEngine, org_id: str
) -> None:
    until = utcnow() + timedelta(hours=1)
    async with db_engine.begin() as conn:
        a = await insert_endpoint(conn, org_id, "https://a.example.com/hook")
        b = await insert_endpoint(
            conn,
            org_id,
            "https://b.example.com/hook",
            previous_secret="whsec_AA==",
            previous_secret_until=until,
        )
        for _ in range(3):
            await insert_event(conn, org_id, [a.id, b.id])
    async with db_engine.begin() as conn:
        batch = await claims.claim(conn, worker="w/1", limit=10, lease_s=30, now=utcnow())
    assert len(batch) == 6
    by_endpoint = {a.id: a, b.id: b}
    for delivery in batch:
        endpoint = by_endpoint[delivery.endpoint_id]
        assert delivery.endpoint.id == endpoint.id
        assert delivery.url == delivery.endpoint.url == endpoint.url
        assert KEYRING.decrypt(delivery.endpoint.secret) == endpoint.secret
    assert len({id(d.endpoint) for d in batch}) == 2  # one per endpoint per claim
    [rotating] = {d.endpoint for d in batch if d.endpoint_id == b.id}
    assert rotating.previous_secret is not None
    assert KEYRING.decrypt(rotating.previous_secret) == "whsec_AA=="
    assert rotating.previous_secret_until is not None
    assert abs((rotating.previous_secret_until - until).total_seconds()) < 1
    assert {d.endpoint.previous_secret for d in batch if d.endpoint_id == a.id} == {None}
