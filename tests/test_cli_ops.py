"""The operator commands (wa_outbound.cli.ops) against a real database, SQLite and PostgreSQL:
`main()` called in a thread as the `wa-outbound` script calls it, and one real process."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from factories import insert_message, insert_sender
from helpers import app_client, make_settings
from wa_outbound.app import create_app
from wa_outbound.cli import main
from wa_outbound.db.schema import audit_event, dlq_count, message_event, outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.lifecycle import erasure
from wa_outbound.orgs import organizations
from wa_outbound.outbox import messages

PHONE = "+33612345678"
ACTOR = f"cli:{getpass.getuser()}"


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The commands' settings from the environment, as on the box; no `.env` is read."""
    for name in [n for n in os.environ if n.startswith("WA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WA_DATABASE_URL", database_url)
    monkeypatch.setenv("WA_PROVIDER", "sandbox")
    monkeypatch.chdir(tmp_path)
    return database_url


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    await asyncio.to_thread(main, list(argv))
    return capsys.readouterr().out


async def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(await _run(capsys, *argv, "--json"))


async def _org(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        org = await organizations.create_org(
            conn,
            name="Acme",
            org_id=f"org-{uuid.uuid4().hex[:8]}",
            daily_quota=1000,
            messages_per_second=None,
            actor="test",
        )
    return str(org["id"])


async def _dead_letter(engine: AsyncEngine, org_id: str, code: str) -> uuid.UUID:
    async with engine.begin() as conn:
        return await insert_message(
            conn,
            org_id=org_id,
            status="FAILED",
            dead_lettered=True,
            error_code=code,
            error_title=f"title of {code}",
            error_retryable=False,
            failed_at=utcnow(),
        )


async def test_messages_get_shows_the_message_and_its_timeline(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = await _org(db_engine)
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, status="QUEUED", to=PHONE)
        await messages.cancel_message(conn, org_id=org_id, message_id=message_id, actor="test")

    table = await _run(capsys, "messages", "get", str(message_id))
    assert str(message_id) in table
    assert "CANCELLED" in table
    # People see the number masked, as in the logs; scripts get it whole.
    assert "+3361****678" in table
    assert PHONE not in table
    output = await _json(capsys, "messages", "get", str(message_id))
    assert output["message"]["id"] == str(message_id)
    assert output["message"]["to"] == PHONE
    assert output["message"]["status"] == "CANCELLED"
    assert [e["type"] for e in output["events"]] == ["cancelled"]


async def test_an_erased_message_shows_no_number(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = await _org(db_engine)
    async with db_engine.begin() as conn:
        message_id = await insert_message(conn, org_id=org_id, status="QUEUED", to=PHONE)
        await erasure.erase_contact(
            conn, org_id=org_id, phone=PHONE, key=b"k" * 32, shared_numbers=(), actor="test"
        )
    table = await _run(capsys, "messages", "get", str(message_id))
    assert "(erased)" in table
    assert (await _json(capsys, "messages", "get", str(message_id)))["message"]["to"] is None


async def test_an_unknown_message_or_org_exits_1_with_the_reason(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        await _run(capsys, "messages", "get", str(uuid.uuid4()))
    assert exited.value.code == 1
    assert "no message" in capsys.readouterr().err
    for argv in (["senders", "list", "--org", "nope"], ["keys", "create", "nope"]):
        with pytest.raises(SystemExit) as exited:
            await _run(capsys, *argv)
        assert exited.value.code == 1
        assert "'nope' not found" in capsys.readouterr().err


async def test_dlq_report_and_replay_by_code_per_org_then_everywhere(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    acme, other = await _org(db_engine), await _org(db_engine)
    acme_ids = [await _dead_letter(db_engine, acme, "132001") for _ in range(2)]
    other_id = await _dead_letter(db_engine, other, "132001")
    kept = await _dead_letter(db_engine, acme, "131026")

    report = await _json(capsys, "dlq", "report")
    assert report["total_failed"] == 4
    assert report["top_error_codes"][0] == {
        "code": "132001",
        "title": "title of 132001",
        "count": 3,
    }
    assert (await _json(capsys, "dlq", "report", "--org", other))["total_failed"] == 1
    table = await _run(capsys, "dlq", "report", "--org", acme)
    assert "3 messages in the dead-letter queue" in table
    assert "132001 (title of 132001): the template does not exist" in table

    replayed = await _json(capsys, "dlq", "replay", "--code", "132001", "--org", acme)
    assert replayed == {"code": "132001", "replayed": 2, "by_org": {acme: 2}}
    everywhere = await _run(capsys, "dlq", "replay", "--code", "132001")
    assert f"{other}  1" in everywhere
    assert "1 messages with error 132001 replayed" in everywhere

    m, e = outbound_message.c, message_event.c
    async with db_engine.connect() as conn:
        rows = await conn.execute(sa.select(m.id, m.status).where(m.org_id.in_([acme, other])))
        statuses = {row.id: row.status for row in rows}
        actors = set(
            await conn.scalars(sa.select(e.actor).where(e.type == "replayed", e.org_id == acme))
        )
    assert {statuses[i] for i in [*acme_ids, other_id]} == {"QUEUED"}
    assert statuses[kept] == "FAILED"
    assert actors == {ACTOR}


async def test_dlq_recount_puts_a_wrong_counter_right(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    acme = await _org(db_engine)
    for _ in range(2):
        await _dead_letter(db_engine, acme, "131026")
    assert await _run(capsys, "dlq", "recount") == (
        "2 messages in the dead-letter queue, counted again: every counter was right\n"
    )
    async with db_engine.begin() as conn:
        await conn.execute(dlq_count.update().values(messages=5))
    assert (await _json(capsys, "dlq", "report", "--org", acme))["total_failed"] == 5
    table = await _run(capsys, "dlq", "recount")
    assert f"{acme}  WHATSAPP  5        2" in table
    assert (await _json(capsys, "dlq", "report", "--org", acme))["total_failed"] == 2
    assert (await _json(capsys, "dlq", "recount"))["corrected"] == []


async def test_senders_list_with_their_limits(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = await _org(db_engine)
    async with db_engine.begin() as conn:
        first = await insert_sender(conn, org_id, waba_id="waba-1", messaging_limit="TIER_2K")
        second = await insert_sender(conn, org_id, waba_id="waba-1", messages_per_second=1000)
    output = await _json(capsys, "senders", "list", "--org", org_id)
    assert [s["id"] for s in output["items"]] == [str(first), str(second)]
    assert [s["default"] for s in output["items"]] == [True, False]
    assert {s["messaging_limit"] for s in output["items"]} == {"TIER_2K"}
    assert "access_token" not in output["items"][0]
    table = await _run(capsys, "senders", "list", "--org", org_id)
    lines = table.splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "number",
        "status",
        "default",
        "msg/s",
        "limit",
        "quality",
    ]
    assert str(second) in lines[2]
    assert "1000" in lines[2]


async def test_keys_create_makes_a_key_the_api_takes(
    cli_env: str, db_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = await _org(db_engine)
    created = await _json(capsys, "keys", "create", org_id, "--name", "billing")
    assert created["org_id"] == org_id
    assert created["api_key"].startswith("wao_")
    async with app_client(create_app(make_settings(cli_env))) as client:
        answer = await client.get(
            "/v1/rate-limits/whatsapp/quota",
            headers={"Authorization": f"Bearer {created['api_key']}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["org_id"] == org_id
    a = audit_event.c
    async with db_engine.connect() as conn:
        actor = await conn.scalar(
            sa.select(a.actor).where(a.action == "api_key.created", a.org_id == org_id)
        )
    assert actor == ACTOR
    table = await _run(capsys, "keys", "create", org_id)
    assert "shown only once" in table
    assert "wao_" in table


def test_a_real_process_prints_the_report(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["WA_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    cli = [sys.executable, "-m", "wa_outbound.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    done = subprocess.run(
        [*cli, "dlq", "report"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 messages in the dead-letter queue (WHATSAPP: 0)")
