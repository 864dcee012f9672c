"""Operator commands: `messages get`, `dlq report`, `dlq replay`, `dlq recount`, `senders list`,
`keys create`.

An operator on the box works the database directly (WA_DATABASE_URL), through the domain
functions the API calls, so a command does exactly what the route does, with the actor
`cli:<user>` in the timelines and the audit trail. Each prints a table for people, or with
`--json` the API's objects for scripts. Tables mask recipients' numbers as the logs do: they
end up in terminals, tickets and chat; `--json` gives them whole, as the API does, since a
script needs the real value.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound import phone
from wa_outbound.config import Settings
from wa_outbound.db import dlq_counts
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.dlq import replay as dlq_replay
from wa_outbound.dlq import report as dlq_report
from wa_outbound.errors import NotFound
from wa_outbound.events.outgoing import json_ready
from wa_outbound.orgs import organizations
from wa_outbound.outbox import messages
from wa_outbound.senders import reporting, store

COMMANDS = ("messages", "dlq", "senders", "keys")
Output = dict[str, Any]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The operator commands, on the CLI's sub-parsers."""
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON, for scripts")

    msg = commands.add_parser("messages", help="read a message").add_subparsers(
        dest="ops_command", required=True
    )
    get = msg.add_parser("get", parents=[as_json], help="a message and its timeline")
    get.add_argument("message_id", type=uuid.UUID, metavar="ID")

    dlq = commands.add_parser("dlq", help="work the dead-letter queue").add_subparsers(
        dest="ops_command", required=True
    )
    report = dlq.add_parser("report", parents=[as_json], help="what is failing, and why")
    report.add_argument("--org", help="one organisation (default: every one)")
    replay = dlq.add_parser(
        "replay", parents=[as_json], help="put dead-lettered messages with an error code back"
    )
    replay.add_argument("--code", required=True, help="the error code, e.g. 132001")
    replay.add_argument("--org", help="one organisation (default: every one)")
    dlq.add_parser(
        "recount", parents=[as_json], help="count the DLQ again into its counters (dlq_count)"
    )

    senders = commands.add_parser("senders", help="an organisation's senders").add_subparsers(
        dest="ops_command", required=True
    )
    listing = senders.add_parser("list", parents=[as_json], help="list them")
    listing.add_argument("--org", required=True)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(
        dest="ops_command", required=True
    )
    create = keys.add_parser("create", parents=[as_json], help="a new API key, shown once")
    create.add_argument("org")
    create.add_argument("--name", default="cli", help="what the key is for")


def run(args: argparse.Namespace, settings: Settings) -> None:
    """Runs one operator command; an unknown id or organisation exits 1 with the reason."""
    command = _COMMANDS[(args.command, args.ops_command)]
    try:
        output = asyncio.run(_with_engine(settings, lambda engine: command(engine, args)))
    except NotFound as exc:
        print(f"{args.command} {args.ops_command}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        print(json.dumps(json_ready(output), indent=2, ensure_ascii=False))
    else:
        print(_RENDER[(args.command, args.ops_command)](json_ready(output)))


def actor() -> str:
    """`cli:<user>` for the audit trail, or `cli` when the OS names no user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


async def _with_engine(settings: Settings, command: Callable[[AsyncEngine], Any]) -> Output:
    """Runs `command` on an engine of its own; each command opens its transactions (short ones:
    a change commits with its events, as the API's route does)."""
    engine = create_engine(settings)
    try:
        result: Output = await command(engine)
        return result
    finally:
        await engine.dispose()


async def _message_get(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    m = outbound_message.c
    async with engine.connect() as conn:
        # The operator knows the id, not always its organisation: look it up first.
        org_id = await conn.scalar(sa.select(m.org_id).where(m.id == args.message_id))
        if org_id is None:
            raise NotFound(f"no message {args.message_id}")
        row = await messages.get_message(conn, org_id=org_id, message_id=args.message_id)
        events = await messages.list_events(conn, org_id=org_id, message_id=args.message_id)
    return {"message": messages.view(row), "events": events}


async def _dlq_report(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    async with engine.connect() as conn:
        if args.org is not None and not await organizations.org_exists(conn, args.org):
            raise NotFound(f"organisation {args.org!r} not found")
        return await dlq_report.report(conn, org_id=args.org, now=utcnow())


async def _dlq_replay(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    m = outbound_message.c
    async with engine.connect() as conn:
        if args.org is not None:
            if not await organizations.org_exists(conn, args.org):
                raise NotFound(f"organisation {args.org!r} not found")
            org_ids = [args.org]
        else:
            dead = sa.select(m.org_id).where(m.dead_lettered.is_(True), m.error_code == args.code)
            org_ids = list(await conn.scalars(dead.distinct().order_by(m.org_id)))
    by_org: dict[str, int] = {}
    for org_id in org_ids:
        # As through the API: at most MAX_BULK_REPLAY per call, each in a short transaction
        # of its own, repeated until a call replays fewer.
        total = 0
        while True:
            async with engine.begin() as conn:
                rows = await dlq_replay.replay(
                    conn, org_id=org_id, actor=actor(), error_code=args.code
                )
            total += len(rows)
            if len(rows) < dlq_replay.MAX_BULK_REPLAY:
                break
        by_org[org_id] = total
    return {"code": args.code, "replayed": sum(by_org.values()), "by_org": by_org}


async def _dlq_recount(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    async with engine.begin() as conn:
        wrong = await dlq_counts.recount(conn)
    async with engine.connect() as conn:
        total = await dlq_counts.total(conn)
    return {"total_failed": total, "corrected": wrong}


async def _senders_list(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    async with engine.connect() as conn:
        if not await organizations.org_exists(conn, args.org):
            raise NotFound(f"organisation {args.org!r} not found")
        items = await store.of_org(conn, args.org)
        limits = await store.messaging_limits(conn, {i.waba_id for i in items if i.waba_id})
    return {"items": [reporting.view(i, limits.get(i.waba_id or "")) for i in items]}


async def _keys_create(engine: AsyncEngine, args: argparse.Namespace) -> Output:
    async with engine.begin() as conn:
        key = await organizations.create_api_key(
            conn, org_id=args.org, name=args.name, actor=actor()
        )
    return {"org_id": args.org, "id": key.id, "prefix": key.prefix, "api_key": key.api_key}


_COMMANDS: dict[tuple[str, str], Callable[[AsyncEngine, argparse.Namespace], Any]] = {
    ("messages", "get"): _message_get,
    ("dlq", "report"): _dlq_report,
    ("dlq", "replay"): _dlq_replay,
    ("dlq", "recount"): _dlq_recount,
    ("senders", "list"): _senders_list,
    ("keys", "create"): _keys_create,
}


# Tables


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; None shows as `-`."""
    cells = [list(headers), *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _time(value: str | None) -> str | None:
    return None if value is None else value[:19].replace("T", " ") + "Z"


def _render_message(output: Output) -> str:
    message = output["message"]
    error = message["error"] or {}
    fields = [
        ("id", message["id"]),
        ("org", message["org_id"]),
        ("to", phone.mask(message["to"]) if message["to"] else "(erased)"),
        ("kind", message["kind"]),
        ("template", (message["template"] or {}).get("name")),
        ("status", message["status"]),
        ("attempts", f"{message['attempts']}/{message['max_attempts']}"),
        ("dead-lettered", "yes" if message["dead_lettered"] else "no"),
        ("error", f"{error['code']} {error.get('title') or ''}".rstrip() if error else None),
        ("waiting", message["waiting_reason"]),
        ("wamid", message["provider_message_id"]),
        ("created", _time(message["created_at"])),
        ("next attempt", _time(message["next_attempt_at"])),
    ]
    head = table(["field", "value"], fields)
    events = table(
        ["at", "event", "from", "to", "actor"],
        [
            (_time(e["at"]), e["type"], e["from_status"], e["to_status"], e["actor"])
            for e in output["events"]
        ],
    )
    return f"{head}\n\n{events}"


def _render_report(output: Output) -> str:
    lines = [
        f"{output['total_failed']} messages in the dead-letter queue "
        f"({', '.join(f'{k}: {v}' for k, v in output['by_channel'].items())})",
        "",
        f"error codes of the last {output['window_hours']} hours:",
        table(
            ["code", "count", "title"],
            [(c["code"], c["count"], c["title"]) for c in output["top_error_codes"]],
        ),
    ]
    if output["recommendations"]:
        lines += ["", "what to do:", *(f"  {line}" for line in output["recommendations"])]
    return "\n".join(lines)


def _render_replay(output: Output) -> str:
    rows = sorted(output["by_org"].items())
    summary = f"{output['replayed']} messages with error {output['code']} replayed"
    return summary if not rows else f"{table(['org', 'replayed'], rows)}\n\n{summary}"


def _render_recount(output: Output) -> str:
    summary = f"{output['total_failed']} messages in the dead-letter queue, counted again"
    rows = [(c["org_id"], c["channel"], c["counter"], c["counted"]) for c in output["corrected"]]
    if not rows:
        return f"{summary}: every counter was right"
    return f"{table(['org', 'channel', 'counter', 'counted'], rows)}\n\n{summary}"


def _render_senders(output: Output) -> str:
    return table(
        ["id", "name", "number", "status", "default", "msg/s", "limit", "quality"],
        [
            (
                s["id"],
                s["name"],
                s["display_phone_number"],
                s["status"]
                + (f" ({', '.join(s['paused_reasons'])})" if s["paused_reasons"] else ""),
                "yes" if s["default"] else "",
                f"{s['messages_per_second']:g}",
                s["messaging_limit"],
                s["quality_rating"],
            )
            for s in output["items"]
        ],
    )


def _render_key(output: Output) -> str:
    return (
        f"API key for {output['org_id']} (prefix {output['prefix']}), shown only once:\n"
        f"  {output['api_key']}"
    )


_RENDER: dict[tuple[str, str], Callable[[Output], str]] = {
    ("messages", "get"): _render_message,
    ("dlq", "report"): _render_report,
    ("dlq", "replay"): _render_replay,
    ("dlq", "recount"): _render_recount,
    ("senders", "list"): _render_senders,
    ("keys", "create"): _render_key,
}
