"""The senders' alerts on SQLite and PostgreSQL: `sender_paused` fires per paused sender and
resolves when it resumes; `messaging_limit` fires per WABA while its messages wait for the limit;
the `outbound_sender_paused` gauge follows the senders."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from factories import insert_message, insert_sender
from helpers import make_settings
from wa_outbound.alerts import AlertEvaluator, Notice
from wa_outbound.alerts.sender_rules import messaging_limit, sender_paused
from wa_outbound.db.schema import outbound_message as om
from wa_outbound.db.schema import sender
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.monitoring.queue_gauges import QueueGauges
from wa_outbound.senders import health


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> None:
        self.notices.append(notice)


def evaluator(engine: AsyncEngine, database_url: str, recorder: Recorder) -> AlertEvaluator:
    rules = {"sender_paused": sender_paused, "messaging_limit": messaging_limit}
    return AlertEvaluator(make_settings(database_url), engine, Metrics(), [recorder], rules=rules)


async def pause(engine: AsyncEngine, sender_id: uuid.UUID, reason: str) -> None:
    async with engine.begin() as conn:
        await health.add_reason(conn, reason, now=utcnow(), actor="test", sender_ids=[sender_id])


async def test_a_paused_sender_raises_a_critical_alert_that_resolves_when_it_resumes(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        paused_id = await insert_sender(conn, org_id, phone_number_id="4445556667")
        await insert_sender(conn, org_id, phone_number_id="4445556668")  # keeps sending
        for _ in range(3):
            await insert_message(conn, org_id=org_id, status="QUEUED", sender_id=paused_id)
    await pause(db_engine, paused_id, "token_invalid")
    recorder = Recorder()
    alerts = evaluator(db_engine, database_url, recorder)
    try:
        evaluation = await alerts.run_once()
        [finding] = evaluation.findings
        assert (finding.type, finding.subject, finding.severity) == (
            "sender_paused",
            str(paused_id),
            "critical",
        )
        # The display number masked, the reasons, the waiting messages.
        assert "+1 55****667" in finding.summary
        assert "+1 555 5556667" not in finding.summary
        assert "token_invalid" in finding.summary
        assert finding.figures["waiting_messages"] == 3
        assert finding.figures["phone_number_id"] == "4445556667"
        [notice] = recorder.notices
        assert (notice.kind, notice.severity) == ("firing", "critical")

        async with db_engine.begin() as conn:
            await health.remove_reasons(
                conn, None, now=utcnow(), actor="test", sender_ids=[paused_id]
            )
        evaluation = await alerts.run_once()
        assert evaluation.findings == []
        assert [n.kind for n in recorder.notices] == ["firing", "resolved"]
    finally:
        await alerts.close()


async def test_messages_waiting_for_the_messaging_limit_raise_one_warning_per_waba(
    db_engine: AsyncEngine, database_url: str, org_id: str
) -> None:
    async with db_engine.begin() as conn:
        first = await insert_sender(conn, org_id, waba_id="waba-l", messaging_limit="TIER_250")
        second = await insert_sender(conn, org_id, waba_id="waba-l")
        quiet = await insert_sender(conn, org_id, waba_id="waba-q")
        waiting = [
            await insert_message(
                conn, org_id=org_id, status=status, sender_id=sender_id, waiting_reason=reason
            )
            for status, sender_id, reason in (
                ("QUEUED", first, "messaging_limit"),
                ("RETRYING", second, "messaging_limit"),
                ("QUEUED", quiet, "throughput"),
                ("CANCELLED", quiet, "messaging_limit"),
            )
        ]
    recorder = Recorder()
    alerts = evaluator(db_engine, database_url, recorder)
    try:
        [finding] = (await alerts.run_once()).findings
        assert (finding.type, finding.subject, finding.severity) == (
            "messaging_limit",
            "waba-l",
            "warning",
        )
        assert finding.figures["waiting_messages"] == 2
        assert finding.figures["messaging_limit"] == "TIER_250"
        assert "TIER_250" in finding.summary

        async with db_engine.begin() as conn:
            await conn.execute(
                om.update().where(om.c.id.in_(waiting[:2])).values(waiting_reason=None)
            )
        assert (await alerts.run_once()).findings == []
        assert [n.kind for n in recorder.notices] == ["firing", "resolved"]
    finally:
        await alerts.close()


async def test_the_paused_gauge_follows_the_senders(db_engine: AsyncEngine, org_id: str) -> None:
    async with db_engine.begin() as conn:
        one = await insert_sender(conn, org_id, phone_number_id="3330001")
        await insert_sender(conn, org_id, phone_number_id="3330002")
    metrics = Metrics()
    gauges = QueueGauges(db_engine, metrics)

    def value(number: str) -> float | None:
        return metrics.registry.get_sample_value("outbound_sender_paused", {"sender": number})

    await gauges.run_once()
    assert (value("3330001"), value("3330002")) == (0, 0)
    await pause(db_engine, one, "manual")
    await gauges.run_once()
    assert (value("3330001"), value("3330002")) == (1, 0)
    async with db_engine.begin() as conn:
        await conn.execute(sender.update().where(sender.c.id == one).values(deleted_at=utcnow()))
    await gauges.run_once()
    assert (value("3330001"), value("3330002")) == (None, 0)
