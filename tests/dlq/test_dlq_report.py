"""The DLQ report on SQLite and PostgreSQL: totals, channels, top codes in 24 h, advice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import NOW, add, add_dead, add_messages, dead_row
from wa_outbound.dlq import report as dlq_report


async def report(engine: AsyncEngine, org_id: str | None = None) -> dict[str, object]:
    async with engine.connect() as conn:
        return await dlq_report.report(conn, org_id=org_id, now=NOW)


async def test_empty_dlq_reports_zero_and_no_codes(db_engine: AsyncEngine) -> None:
    assert await report(db_engine) == {
        "total_failed": 0,
        "by_channel": {"WHATSAPP": 0},
        "top_error_codes": [],
        "window_hours": 24,
        "recommendations": [],
    }


async def test_report_counts_dead_letters_and_ranks_codes_of_the_last_day(
    db_engine: AsyncEngine,
) -> None:
    await add_dead(db_engine, 3, code="190", title="Access token expired")
    await add_dead(db_engine, 2, code="132001", title="Template name does not exist")
    await add_dead(db_engine, 1, code="131047", title="Re-engagement message")
    # Older than the window: counted in the total, not in the top codes.
    await add_dead(db_engine, 4, code="131026", failed_at=NOW - timedelta(hours=25))
    # Failed but not dead-lettered (consent revoked), and a healthy message: not in the DLQ.
    await add(db_engine, 1, status="FAILED", error_code="consent_revoked", failed_at=NOW)
    await add(db_engine, 2, status="DELIVERED")

    body = await report(db_engine)

    assert body["total_failed"] == 10
    assert body["by_channel"] == {"WHATSAPP": 10}
    assert body["top_error_codes"] == [
        {"code": "190", "title": "Access token expired", "count": 3},
        {"code": "132001", "title": "Template name does not exist", "count": 2},
        {"code": "131047", "title": "Re-engagement message", "count": 1},
    ]
    recommendations = body["recommendations"]
    assert isinstance(recommendations, list)
    assert len(recommendations) == 3
    assert "rotate" in recommendations[0]
    assert recommendations[0].startswith("190 ")
    assert "template name and language" in recommendations[1]
    assert "send a template" in recommendations[2]


async def test_top_error_codes_stop_at_ten(db_engine: AsyncEngine) -> None:
    rows = [dead_row(code=str(1000 + i), title=None) for i in range(12) for _ in range(i + 1)]
    await add_messages(db_engine, rows)
    body = await report(db_engine)
    codes = body["top_error_codes"]
    assert isinstance(codes, list)
    assert [item["code"] for item in codes] == [str(1000 + i) for i in range(11, 1, -1)]


async def test_unknown_codes_get_the_generic_recommendation(db_engine: AsyncEngine) -> None:
    await add_dead(db_engine, 1, code="999999", title="Something new")
    await add_dead(db_engine, 1, code=None, title=None)
    body = await report(db_engine)
    assert body["recommendations"] == [
        f"999999 (Something new): {dlq_report.GENERIC_ADVICE}",
        f"unknown: {dlq_report.GENERIC_ADVICE}",
    ]


async def test_quality_and_throughput_codes_have_their_own_advice() -> None:
    assert "pause" in dlq_report.recommendation("131048", None)
    assert "pause" in dlq_report.recommendation("131064", None)
    assert "throughput" in dlq_report.recommendation("130429", None)
    assert "pair" in dlq_report.recommendation("131056", None)
    assert "cannot receive" in dlq_report.recommendation("131026", None)


async def test_server_errors_without_a_meta_code_get_connectivity_advice() -> None:
    for code in ("http_500", "http_503", "transport_error"):
        assert "status page" in dlq_report.recommendation(code, None)
    assert dlq_report.GENERIC_ADVICE in dlq_report.recommendation("http_400", None)


async def test_report_for_one_organisation_leaves_out_the_others(db_engine: AsyncEngine) -> None:
    await add_dead(db_engine, 2, org_id="acme", code="190")
    await add_dead(db_engine, 5, org_id="globex", code="131026")
    acme = await report(db_engine, "acme")
    everyone = await report(db_engine)
    assert acme["total_failed"] == 2
    assert acme["top_error_codes"] == [
        {"code": "190", "title": "Message undeliverable", "count": 2}
    ]
    assert everyone["total_failed"] == 7
