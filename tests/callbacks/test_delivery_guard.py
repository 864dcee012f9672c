"""The SSRF guard at delivery, and one hanging endpoint among others, on PostgreSQL.

An endpoint stored while insecure URLs were allowed is refused at every delivery once they are
not: nothing is sent, the attempt fails with `url_not_allowed`. A host name is connected to at
the address checked for it. One endpoint that hangs for the full timeout holds its host's
connections only: another endpoint's deliveries go on at once."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import deliveries, insert_endpoint, insert_event
from callback_receiver import Behaviour, receiving
from callbacks.delivery_support import callback_settings, new_worker, running
from factories import insert_org
from helpers import eventually
from wa_outbound.callbacks.transport import PinnedResolver


async def test_urls_not_allowed_any_more_fail_each_attempt_with_url_not_allowed(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    async with receiving() as receiver:
        port = receiver.base_url.rsplit(":", 1)[1]
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            refused = [
                await insert_endpoint(conn, org_id, url)
                for url in (
                    f"http://localhost:{port}/plain",  # http://, and loopback
                    f"https://localhost:{port}/tls",  # a name that resolves to loopback
                    f"https://127.0.0.1:{port}/literal",
                    "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
                )
            ]
            for endpoint in refused:
                await insert_event(conn, org_id, [endpoint.id])
        worker = new_worker(
            pg_engine, callback_settings(postgres_url, callback_allow_insecure=False)
        )
        assert await worker.run_once() == 4
        assert receiver.received == []
        async with pg_engine.connect() as conn:
            for endpoint in refused:
                [row] = await deliveries(conn, endpoint.id)
                assert (row.status, row.last_error) == ("pending", "url_not_allowed"), endpoint.url
                assert row.last_status_code is None
        assert worker.metrics.callback_deliveries.labels(result="url_not_allowed")._value.get() == 4


async def test_a_host_name_is_connected_to_at_the_address_checked_for_it(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    async with receiving() as receiver:
        port = receiver.base_url.rsplit(":", 1)[1]
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            endpoint = await insert_endpoint(conn, org_id, f"http://localhost:{port}/named")
            await insert_event(conn, org_id, [endpoint.id])
        # Insecure allowed (loopback is this test's only network): the name is resolved by the
        # guard, and the connection goes through the pinned resolver.
        await new_worker(pg_engine, callback_settings(postgres_url)).run_once()
        [received] = receiver.at("/named")
        assert received.headers["host"] == f"localhost:{port}"


async def test_the_pinned_resolver_never_looks_a_name_up_itself() -> None:
    resolver = PinnedResolver()
    resolver.pin("hooks.example.com", 443, ["93.184.215.14"])
    [result] = await resolver.resolve("hooks.example.com", 443)
    assert (result["host"], result["hostname"], result["port"]) == (
        "93.184.215.14",
        "hooks.example.com",
        443,
    )
    for host, port in (("hooks.example.com", 8443), ("other.example.com", 443)):
        try:
            await resolver.resolve(host, port)
        except OSError:
            continue
        raise AssertionError(f"{host}:{port} resolved without a check")


async def test_an_endpoint_that_hangs_does_not_delay_another_endpoints_deliveries(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    async with receiving() as hanging, receiving() as healthy:
        hanging.behaviours["/slow"] = Behaviour(hang=True)
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            slow = await insert_endpoint(conn, org_id, hanging.url("/slow"))
            fast = await insert_endpoint(conn, org_id, healthy.url("/fast"))
            # The hanging endpoint's deliveries are older: they head the queue, more than a
            # whole claim and more than twice the concurrency.
            for _ in range(150):
                await insert_event(conn, org_id, [slow.id], message_id=uuid.uuid4())
            for _ in range(20):
                await insert_event(conn, org_id, [fast.id], message_id=uuid.uuid4())
        settings = callback_settings(
            postgres_url, callback_timeout_seconds=5.0, callback_concurrency=16
        )
        started = time.monotonic()
        async with running(new_worker(pg_engine, settings)):
            await eventually(lambda: len(healthy.at("/fast")) == 20, timeout_s=30)
            fast_done_s = time.monotonic() - started
            # The hanging endpoint got its host's connections, and no more.
            assert len(hanging.at("/slow")) == settings.callback_per_host_connections
            hanging.release.set()
        assert fast_done_s < 1.0, fast_done_s
        async with pg_engine.connect() as conn:
            rows = await deliveries(conn, fast.id)
        assert {row.status for row in rows} == {"succeeded"}


async def test_a_worker_stopping_gives_back_what_it_has_not_finished(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    async with receiving() as receiver:
        receiver.behaviours["/slow"] = Behaviour(hang=True)
        async with pg_engine.begin() as conn:
            org_id = await insert_org(conn)
            endpoint = await insert_endpoint(conn, org_id, receiver.url("/slow"))
            for _ in range(20):
                await insert_event(conn, org_id, [endpoint.id], message_id=uuid.uuid4())
        settings = callback_settings(
            postgres_url, callback_timeout_seconds=10.0, shutdown_grace_seconds=0.5
        )
        async with running(new_worker(pg_engine, settings)):
            await eventually(lambda: len(receiver.at("/slow")) == 8)
        # Stopped past its grace: the 8 attempts in flight were cut, the 12 queued never began.
        async with pg_engine.connect() as conn:
            rows = await deliveries(conn, endpoint.id)
        assert {row.status for row in rows} == {"pending"}
        assert {row.claimed_by for row in rows} == {None}  # claimable again at once
        # The attempts cut may have reached the app: they count. The others are given back.
        assert sorted(row.attempts for row in rows) == [0] * 12 + [1] * 8
        assert {row.last_error for row in rows} == {"interrupted"}
