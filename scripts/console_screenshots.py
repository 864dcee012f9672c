"""Screenshots of every console page for docs/console.md (PNG files in docs/console/).

Runs `wa-outbound serve` on a fresh SQLite file with the sandbox and the dispatcher off (the
seeded state stays as it is), seeds three hours of an organisation's traffic straight into its
database (sends, failures, a template error that filled the dead-letter queue, waiting
messages, a paused sender, a webhook endpoint with failed deliveries, alerts), signs in with
the organisation's key in Debian's Chromium (tests/browser.py) and takes each page, at a
laptop's size and, for some, a phone's. Every request outside the service is refused.

    .venv/bin/python scripts/console_screenshots.py [--output docs/console]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import ViewportSize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium, service_origin, watch  # noqa: E402
from callback_helpers import insert_event_with_deliveries  # noqa: E402
from factories import insert_sender  # noqa: E402
from helpers import ADMIN, ADMIN_TOKEN, free_port, make_settings  # noqa: E402
from wa_outbound.db.engine import create_engine  # noqa: E402
from wa_outbound.db.schema import (  # noqa: E402
    SHARED_SENDER_ID,
    alert,
    message_event,
    outbound_message,
    sender,
)
from wa_outbound.db.types import utcnow  # noqa: E402

LAPTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
TEMPLATE = {"name": "order_update", "language": "en_US", "components": []}
HOURS = 3


def _row(org_id: str, created_at: datetime, **columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "channel": "WHATSAPP",
        "to_phone": f"+3361{random.randint(0, 9_999_999):07d}",
        "kind": "template",
        "payload": TEMPLATE,
        "message_metadata": {},
        "idempotency_key": None,
        "request_hash": None,
        "status": "READ",
        "attempts": 1,
        "max_attempts": 5,
        "next_attempt_at": created_at,
        "lease_until": None,
        "claimed_by": None,
        "provider_message_id": None,
        "error_code": None,
        "error_title": None,
        "error_message": None,
        "error_details": None,
        "error_retryable": None,
        "dead_lettered": False,
        "created_at": created_at,
        "updated_at": created_at,
        "accepted_at": None,
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "failed_at": None,
        "sender_id": SHARED_SENDER_ID,
        "waiting_reason": None,
        "expires_at": None,
    }
    return row | columns


def _traffic(org_id: str, now: datetime) -> list[dict[str, Any]]:
    """Three hours of sends: a daily-looking curve, a few failures, and a template that broke
    40 minutes ago for 12 minutes (132001, dead-lettered)."""
    rows = []
    for minute in range(HOURS * 60, 0, -1):
        at = now - timedelta(minutes=minute)
        rate = 18 + 10 * math.sin(minute / 25) + random.randint(0, 6)
        for _ in range(int(rate)):
            created = at + timedelta(seconds=random.uniform(0, 59))
            accepted = created + timedelta(seconds=random.uniform(0.2, 1.5))
            rows.append(
                _row(
                    org_id,
                    created,
                    status=random.choice(["READ", "READ", "DELIVERED", "SENT"]),
                    provider_message_id=f"wamid.{uuid.uuid4().hex}",
                    accepted_at=accepted,
                    sent_at=accepted,
                    delivered_at=accepted + timedelta(seconds=2),
                    read_at=accepted + timedelta(seconds=30),
                )
            )
        failures: list[tuple[str, str, bool]] = []
        if 28 <= minute <= 40:
            failures += [("132001", "Template name does not exist in the translation", True)]
        if random.random() < 0.04:
            failures.append(("131026", "Message undeliverable", True))
        for code, title, dead in failures:
            created = at + timedelta(seconds=random.uniform(0, 50))
            rows.append(
                _row(
                    org_id,
                    created,
                    status="FAILED",
                    error_code=code,
                    error_title=title,
                    error_message=f"(#{code}) {title}",
                    error_retryable=False,
                    dead_lettered=dead,
                    failed_at=created + timedelta(seconds=1),
                )
            )
    for i in range(37):  # scheduled for later, and a few backing off
        created = now - timedelta(minutes=random.uniform(1, 25))
        rows.append(
            _row(
                org_id,
                created,
                status="RETRYING" if i % 9 == 0 else "QUEUED",
                attempts=2 if i % 9 == 0 else 0,
                next_attempt_at=now + timedelta(minutes=random.uniform(5, 90)),
            )
        )
    return rows


def _events(row: dict[str, Any]) -> list[dict[str, Any]]:
    start, org_id = row["created_at"], row["org_id"]
    steps: list[tuple[str, str | None, str, str, dict[str, Any]]] = [
        ("queued", None, "QUEUED", "api_key:wao_Xk3f9Q1b", {})
    ]
    steps.append(("claimed", "QUEUED", "SENDING", "dispatcher", {"attempt": 1}))
    if row["status"] == "FAILED":
        steps.append(
            (
                "failed",
                "SENDING",
                "FAILED",
                "dispatcher",
                {"error": {"code": row["error_code"], "title": row["error_title"]}},
            )
        )
    else:
        steps += [
            ("accepted", "SENDING", "ACCEPTED", "dispatcher", {}),
            ("status.sent", "ACCEPTED", "SENT", "webhook", {"applied": True}),
            ("status.delivered", "SENT", "DELIVERED", "webhook", {"applied": True}),
            ("status.read", "DELIVERED", "READ", "webhook", {"applied": True}),
        ]
    return [
        {
            "message_id": row["id"],
            "org_id": org_id,
            "at": start + timedelta(seconds=i * 0.7),
            "type": kind,
            "from_status": before,
            "to_status": after,
            "actor": actor,
            "details": details,
        }
        for i, (kind, before, after, actor, details) in enumerate(steps)
    ]


async def seed(database_url: str, org_id: str, endpoint_id: str) -> dict[str, str]:
    random.seed(18)
    now = utcnow()
    rows = _traffic(org_id, now)
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(outbound_message.insert(), rows)
            shown = [r for r in rows if r["dead_lettered"]] + [
                r for r in rows[-400:] if r["status"] == "READ"
            ][:20]
            await conn.execute(message_event.insert(), [e for r in shown for e in _events(r)])
            main = await insert_sender(
                conn, org_id, phone_number_id="106540352242922", waba_id="102290129340398",
                token="EAAG-main-7d2c", messaging_limit="TIER_10K",
            )  # fmt: skip
            paused = await insert_sender(
                conn, org_id, phone_number_id="106540352249001", waba_id="102290129340398",
                token="EAAG-support-91ab",
            )  # fmt: skip
            await conn.execute(
                sender.update()
                .where(sender.c.id == paused)
                .values(
                    name="Support line", paused_reasons=["token_invalid"],
                    paused_at=now - timedelta(minutes=14),
                )
            )  # fmt: skip
            await conn.execute(sender.update().where(sender.c.id == main).values(name="Orders"))
            for i in range(14):
                status = ["succeeded", "succeeded", "failed"][i % 3]
                await insert_event_with_deliveries(
                    conn,
                    org_id=org_id,
                    endpoint_ids=[uuid.UUID(endpoint_id)],
                    event_type=["message.read", "message.delivered", "message.failed"][i % 3],
                    message_id=rows[-100 - i]["id"],
                    at=now - timedelta(minutes=3 * i),
                    status=status,
                    attempts=1 if status == "succeeded" else 8,
                    last_status_code=200 if status == "succeeded" else 503,
                    last_error=None if status == "succeeded" else "HTTP 503 from the endpoint",
                    delivered_at=now - timedelta(minutes=3 * i) if status == "succeeded" else None,
                )
            for type_, state, summary, ago in (
                ("sender_paused", "firing", "Sender Support line is paused: token_invalid", 14),
                ("sender_paused", "resolved", "Sender Orders was paused: manual", 42),
            ):
                await conn.execute(
                    alert.insert().values(
                        id=uuid.uuid4(), type=type_, subject=f"{org_id}:{type_}:{ago}",
                        severity="critical" if state == "firing" else "warning", state=state,
                        summary=summary, details={"org_id": org_id},
                        first_fired_at=now - timedelta(minutes=ago),
                        last_notified_at=now - timedelta(minutes=ago),
                        resolved_at=None if state == "firing" else now - timedelta(minutes=20),
                        notifications=1, updated_at=now,
                    )
                )  # fmt: skip
    finally:
        await engine.dispose()
    dead = next(r for r in rows if r["dead_lettered"] and r["error_code"] == "132001")
    return {"dead": str(dead["id"])}


async def shoot(base_url: str, key: str, endpoint_id: str, ids: dict[str, str], out: Path) -> None:
    origin = service_origin(base_url)
    async with chromium() as browser:
        for size_name, size in (("", LAPTOP), ("-phone", PHONE)):
            context = await browser.new_context(
                viewport=size, device_scale_factor=1 if size is LAPTOP else 2
            )
            page = await context.new_page()
            seen = await watch(page, origin)
            await page.goto(f"{origin}/console/sign-in")
            if size is LAPTOP:
                await page.screenshot(path=out / "sign-in.png")
            await page.get_by_label("API key or admin token").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("heading", name="Overview").wait_for()
            pages = [
                ("overview", "/console/"),
                ("dlq", "/console/dlq"),
                ("messages", "/console/messages"),
            ]
            if size is LAPTOP:
                pages += [
                    ("message", f"/console/messages/{ids['dead']}"),
                    ("alerts", "/console/alerts"),
                    ("senders", "/console/senders"),
                    ("endpoints", "/console/endpoints"),
                    ("endpoint", f"/console/endpoints/{endpoint_id}"),
                ]
            for name, path in pages:
                await page.goto(f"{origin}{path}")
                # A phone's shot is its screen; a laptop's, the whole page.
                await page.screenshot(path=out / f"{name}{size_name}.png", full_page=size is LAPTOP)
            if size is LAPTOP:
                await page.goto(f"{origin}/console/dlq")
                await (
                    page.locator(".groups li", has_text="132001")
                    .get_by_role("button", name="Replay all 132001…")
                    .click()
                )
                await page.screenshot(path=out / "dlq-confirm.png")
            await context.close()
            assert seen.outside == [], seen.outside
            assert seen.errors == [], seen.errors
        # The admin token signs in, then picks an organisation.
        context = await browser.new_context(viewport=LAPTOP)
        page = await context.new_page()
        seen = await watch(page, origin)
        await page.goto(f"{origin}/console/sign-in")
        await page.get_by_label("API key or admin token").fill(ADMIN_TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Pick an organisation").wait_for()
        await page.screenshot(path=out / "orgs.png")
        await context.close()
        assert seen.outside == [], seen.outside
        assert seen.errors == [], seen.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        database_url = f"sqlite+aiosqlite:///{workdir}/console.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")} | {
            "WA_DATABASE_URL": database_url,
            "WA_PROVIDER": "sandbox",
            "WA_ADMIN_TOKEN": ADMIN_TOKEN,
            "WA_DISPATCH_ENABLED": "false",
            "WA_ALERT_ENABLED": "false",
            "WA_CONSOLE_ALLOW_INSECURE": "true",
            "WA_CALLBACK_ENABLED": "false",
            "WA_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        binary = str(Path(sys.executable).parent / "wa-outbound")
        process = subprocess.Popen(
            [binary, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base_url}/health/live").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with httpx.Client(base_url=base_url) as client:
                org = client.post(
                    "/v1/admin/orgs", json={"name": "Acme Retail", "id": "acme"}, headers=ADMIN
                ).json()
                key = client.post(
                    f"/v1/admin/orgs/{org['id']}/api-keys", json={"name": "ops"}, headers=ADMIN
                ).json()["api_key"]
                endpoint = client.post(
                    "/v1/webhook-endpoints",
                    json={"url": "https://93.184.215.14/hooks/whatsapp", "description": "CRM"},
                    headers={"Authorization": f"Bearer {key}"},
                ).json()
            ids = asyncio.run(seed(database_url, org["id"], endpoint["id"]))
            asyncio.run(shoot(base_url, key, endpoint["id"], ids, args.output))
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"screenshots written to {args.output}")


if __name__ == "__main__":
    main()
