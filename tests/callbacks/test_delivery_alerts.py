"""`callback_endpoint_disabled` fires per endpoint the worker disabled (gone, failing), not for
one the organisation disabled, and resolves when it is enabled again or deleted; the pending
gauge follows the deliveries. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callback_helpers import insert_endpoint, insert_event
from helpers import make_settings
from wa_outbound.alerts import AlertEvaluator, Notice
from wa_outbound.alerts.callback_rules import callback_endpoint_disabled
from wa_outbound.db.callback_schema import callback_delivery, callback_endpoint
from wa_outbound.metrics import Metrics
from wa_outbound.monitoring.queue_gauges import QueueGauges


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


async def test_a_disabled_endpoint_alerts_until_enabled_or_deleted(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    url = "https://hooks.example.com/wa?token=s3cret"
    async with db_engine.begin() as conn:
        gone = await insert_endpoint(conn, org_id, url, enabled=False, disabled_reason="gone")
        failing = await insert_endpoint(conn, org_id, url, enabled=False, disabled_reason="failing")
        await insert_endpoint(conn, org_id, url, enabled=False, disabled_reason="manual")
        await insert_endpoint(conn, org_id, url)
        for _ in range(2):
            await insert_event(conn, org_id, [gone.id])
    recorder = Recorder()
    rules = {"callback_endpoint_disabled": callback_endpoint_disabled}
    settings = make_settings(database_url)
    alerts = AlertEvaluator(settings, db_engine, Metrics(), [recorder], rules=rules)
    try:
        evaluation = await alerts.run_once()
        findings = {f.subject: f for f in evaluation.findings}
        assert set(findings) == {str(gone.id), str(failing.id)}
        assert findings[str(gone.id)].figures["pending_deliveries"] == 2
        assert findings[str(gone.id)].figures["disabled_reason"] == "gone"
        assert findings[str(failing.id)].figures["disabled_reason"] == "failing"
        for finding in findings.values():
            assert finding.type == "callback_endpoint_disabled"
            assert "hooks.example.com" in finding.summary
            assert "s3cret" not in str(finding.summary) + str(finding.figures)
        assert [n.kind for n in recorder.notices] == ["firing", "firing"]

        async with db_engine.begin() as conn:
            e = callback_endpoint.c
            await conn.execute(
                callback_endpoint.update()
                .where(e.id == gone.id)
                .values(enabled=True, disabled_reason=None)
            )
            await conn.execute(
                callback_delivery.delete().where(callback_delivery.c.endpoint_id == failing.id)
            )
            await conn.execute(callback_endpoint.delete().where(e.id == failing.id))
        evaluation = await alerts.run_once()
        assert evaluation.findings == []
        assert sorted(n.kind for n in recorder.notices) == [
            "firing",
            "firing",
            "resolved",
            "resolved",
        ]
    finally:
        await alerts.close()


async def test_the_pending_gauge_counts_pending_deliveries(
    db_engine: AsyncEngine, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        endpoint = await insert_endpoint(conn, org_id, "https://hooks.example.com/")
        for _ in range(3):
            await insert_event(conn, org_id, [endpoint.id])
        await conn.execute(
            callback_delivery.update()
            .where(
                callback_delivery.c.event_seq
                == sa.select(sa.func.min(callback_delivery.c.event_seq)).scalar_subquery()
            )
            .values(status="succeeded")
        )
    metrics = Metrics()
    await QueueGauges(db_engine, metrics).run_once()
    assert metrics.callback_pending._value.get() == 2
