"""The overview's figures and charts: per-minute series from the messages' own times, the
queue depth rebuilt backwards from today's, and the SVG the page shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from alert_factories import add_messages, message_row
from wa_outbound.console import figures
from wa_outbound.console.charts import chart, nice_ceiling

NOW = datetime(2026, 12, 2, 12, 0, 30, tzinfo=UTC)


def minutes_ago(n: float) -> datetime:
    return NOW - timedelta(minutes=n)


async def test_sends_failures_and_the_rebuilt_queue_depth_per_minute(
    db_engine: AsyncEngine, org_id: str
) -> None:
    rows = [
        # Two queued 10 minutes ago and accepted 5 minutes ago.
        *[
            message_row(
                org_id=org_id,
                now=NOW,
                age=timedelta(minutes=10),
                status="READ",
                accepted_at=minutes_ago(5),
            )
            for _ in range(2)
        ],
        # One queued 3 minutes ago that failed a minute later.
        message_row(
            org_id=org_id,
            now=NOW,
            age=timedelta(minutes=3),
            status="FAILED",
            failed_at=minutes_ago(2),
            accepted_at=None,
        ),
        # One queued 2 minutes ago, still waiting.
        message_row(org_id=org_id, now=NOW, age=timedelta(minutes=2), accepted_at=None),
        # Another organisation's: never counted.
        message_row(org_id="someone-else", now=NOW, age=timedelta(minutes=4), accepted_at=None),
    ]
    await add_messages(db_engine, rows)

    async with db_engine.connect() as conn:
        found = await figures.read(conn, org_id=org_id, now=NOW, hours=1)

    assert len(found.sent) == len(found.depth) == 60
    assert found.start == datetime(2026, 12, 2, 11, 1, tzinfo=UTC)
    # The last bucket is the current minute (12:00); n minutes ago is bucket -1 - n.
    assert found.sent[-6] == 2
    assert sum(found.sent) == 2
    assert found.failed[-3] == 1
    assert sum(found.failed) == 1
    assert found.queued[-11] == 2
    assert found.queued[-4] == 1
    assert found.queued[-3] == 1
    assert found.totals["queue_depth"] == 1
    # 0 before the first two arrive, 2 until they are accepted, then the third and fourth.
    assert found.depth[:-11] == [0] * 49
    assert found.depth[-11:-6] == [2] * 5
    assert found.depth[-6:] == [0, 0, 1, 1, 1, 1]
    assert found.by_status == {"QUEUED": 1, "RETRYING": 0, "SENDING": 0}
    assert found.oldest_waiting is not None
    assert found.oldest_waiting["id"] == rows[3]["id"]


def test_a_chart_draws_one_bar_per_non_empty_bucket_under_a_round_top() -> None:
    svg = chart("Sent <per> minute", [0, 3, 7, 0], start=NOW, step=timedelta(minutes=1))

    assert svg.startswith("<svg")
    assert len(re.findall(r"<rect ", svg)) == 2
    assert "Sent &lt;per&gt; minute" in svg
    assert ">10</text>" in svg  # the axis' top: 7 rounds up to 10
    assert nice_ceiling(0) == 1
    assert nice_ceiling(130) == 200
    assert nice_ceiling(500) == 500


def test_a_line_chart_of_nothing_is_still_a_chart() -> None:
    svg = chart("Queue depth", [], start=NOW, step=timedelta(minutes=1), kind="line")

    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<polyline" not in svg
