"""`/metrics`: every contract metric from start-up, the label sets after a real flow, and the
database-backed gauges."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_app import cloud_app, run_flow
from dispatch_helpers import Clock, new_org, queue
from helpers import eventually
from wa_outbound.metrics import Metrics
from wa_outbound.monitoring.queue_gauges import QueueGauges
from wa_outbound.outbox import messages

# API.md's names, plus the issue's; counters are listed by their family name (no `_total`).
CONTRACT_FAMILIES = {
    "outbound_message_queue_depth": "gauge",
    "outbound_message_dlq_size": "gauge",
    "outbound_message_sent": "counter",
    "outbound_message_failed": "counter",
    "outbound_alert_email_sent": "counter",
    "outbound_alert_slack_sent": "counter",
    "outbound_send_latency_seconds": "histogram",
    "outbound_webhook_statuses": "counter",
    "outbound_ratelimit_decisions": "counter",
    "outbound_ratelimit_backend": "gauge",
    "outbound_message_enqueue_to_accepted_seconds": "histogram",
    "outbound_message_oldest_queued_age_seconds": "gauge",
    "outbound_dispatcher_claims": "counter",
    "outbound_dispatcher_batch_size": "histogram",
}


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def value(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def label_sets(samples: Iterable[Sample], name: str) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(s.labels.items()) for s in samples if s.name == name}


async def test_every_contract_metric_is_exposed_from_start_up(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/metrics")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families.items() >= CONTRACT_FAMILIES.items()
    samples = await scrape(client)
    assert value(samples, "outbound_message_dlq_size") == 0
    assert value(samples, "outbound_message_sent_total", channel="WHATSAPP") == 0
    assert value(samples, "outbound_alert_email_sent_total", severity="critical") == 0
    assert value(samples, "outbound_alert_slack_sent_total", severity="warning") == 0
    assert (
        value(samples, "outbound_webhook_statuses_total", status="delivered", outcome="applied")
        == 0
    )
    assert (
        value(samples, "outbound_ratelimit_decisions_total", backend="redis", result="denied") == 0
    )


async def test_metrics_are_documented_as_prometheus_text_in_the_openapi_schema(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" in paths
    assert "text/plain" in str(paths["/metrics"]["get"]["responses"]["200"]["content"])


async def test_a_real_flow_shows_in_the_metrics_with_bounded_label_sets(database_url: str) -> None:
    async with cloud_app(database_url) as app:
        await run_flow(app)

        async def dlq_counted() -> bool:
            return value(await scrape(app.client), "outbound_message_dlq_size") == 2

        await eventually(dlq_counted)
        samples = await scrape(app.client)

    assert value(samples, "outbound_message_sent_total", channel="WHATSAPP") == 1
    # One refused by Meta at send time, one failed by the webhook.
    assert label_sets(samples, "outbound_message_failed_total") == {
        frozenset({("channel", "WHATSAPP"), ("error_code", "132001")}),
        frozenset({("channel", "WHATSAPP"), ("error_code", "131026")}),
    }
    for code in ("132001", "131026"):
        assert (
            value(samples, "outbound_message_failed_total", channel="WHATSAPP", error_code=code)
            == 1
        )
    for outcome in ("accepted", "error"):
        count = "outbound_send_latency_seconds_count"
        assert value(samples, count, channel="WHATSAPP", outcome=outcome) == 1
    assert (
        value(samples, "outbound_message_enqueue_to_accepted_seconds_count", channel="WHATSAPP")
        == 1
    )
    for status in ("sent", "failed"):
        assert (
            value(samples, "outbound_webhook_statuses_total", status=status, outcome="applied") == 1
        )
    claimed = value(samples, "outbound_dispatcher_claims_total", result="claimed")
    assert claimed is not None
    assert claimed >= 1
    assert value(samples, "outbound_dispatcher_batch_size_sum") == 2
    # Nothing waits any more: no organisation's series is left behind.
    assert label_sets(samples, "outbound_message_queue_depth") == set()
    assert value(samples, "outbound_message_oldest_queued_age_seconds") == 0
    # Bounded labels: channel, code, status, outcome, backend, result, severity, org id, a
    # webhook field, sender (a phone_number_id: Meta's id of a number, as bounded as the
    # senders are), and a table retention deletes from.
    allowed = {
        "channel",
        "error_code",
        "outcome",
        "status",
        "backend",
        "result",
        "severity",
        "notifier",
        "kind",
        "org_id",
        "field",
        "sender",
        "table",
        "le",
    }
    assert {key for s in samples for key in s.labels} <= allowed


async def test_queue_gauges_follow_the_database_and_drop_emptied_organisations(
    db_engine: AsyncEngine,
) -> None:
    clock = Clock()
    metrics = Metrics()
    gauges = QueueGauges(db_engine, metrics, clock=clock)
    busy = await new_org(db_engine, "+33611111111", "+33622222222")
    quiet = await new_org(db_engine, "+33633333333")
    await queue(db_engine, busy, "+33611111111", "+33622222222")
    [quiet_message] = await queue(db_engine, quiet, "+33633333333")
    clock.advance(90)

    await gauges.run_once()
    depth = metrics.registry.get_sample_value
    assert depth("outbound_message_queue_depth", {"org_id": busy}) == 2
    assert depth("outbound_message_queue_depth", {"org_id": quiet}) == 1
    age = depth("outbound_message_oldest_queued_age_seconds")
    assert age is not None
    assert age >= 90

    async with db_engine.begin() as conn:
        await messages.cancel_message(conn, org_id=quiet, message_id=quiet_message, actor="test")
    await gauges.run_once()
    assert depth("outbound_message_queue_depth", {"org_id": busy}) == 2
    assert depth("outbound_message_queue_depth", {"org_id": quiet}) is None
    assert depth("outbound_message_dlq_size") == 0
