"""`wa-outbound`: serve, migrate, create organisations, re-encrypt stored secrets, print the
OpenAPI document, and the operator commands (cli.ops): read a message, work the dead-letter
queue, list senders, create API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path

from pydantic import ValidationError

from wa_outbound import logs
from wa_outbound.cli import ops
from wa_outbound.cli.gc_tuning import tune_gc
from wa_outbound.config import Settings, describe_error
from wa_outbound.crypto import Keyring, NoEncryptionKey, StoredSecretUnreadable, reencrypt
from wa_outbound.db import migrate
from wa_outbound.db.engine import create_engine
from wa_outbound.orgs import organizations


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


async def _migrate(settings: Settings) -> None:
    # Migrations hold a session (the migration lock, no statement timeout): on
    # WA_DATABASE_SESSION_URL, never through a transaction pooler.
    direct = settings.model_copy(update={"database_url": settings.session_database_url})
    engine = create_engine(direct)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _create_org(settings: Settings, name: str, org_id: str | None = None) -> dict[str, str]:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            org = await organizations.create_org(
                conn,
                name=name,
                org_id=org_id,
                daily_quota=settings.default_daily_quota,
                messages_per_second=settings.default_messages_per_second,
                actor="cli",
            )
            key = await organizations.create_api_key(
                conn, org_id=org["id"], name="cli", actor="cli"
            )
        return {"org_id": org["id"], "api_key": key.api_key}
    finally:
        await engine.dispose()


async def _reencrypt(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        return await reencrypt(engine, Keyring.from_settings(settings))
    finally:
        await engine.dispose()


def _reencrypt_command(settings: Settings) -> None:
    try:
        rewritten = asyncio.run(_reencrypt(settings))
    except (NoEncryptionKey, StoredSecretUnreadable) as exc:
        print(f"secrets reencrypt: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{rewritten} stored secrets re-encrypted with the first key of WA_SECRET_KEYS")


async def _bootstrap_sandbox(settings: Settings) -> dict[str, str] | None:
    """On an empty sandbox database, create org `demo` so `make run` works with no setup."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            if await organizations.count_orgs(conn) > 0:
                return None
    finally:
        await engine.dispose()
    return await _create_org(settings, "Demo", org_id="demo")


def openapi_json() -> str:
    """The app's OpenAPI document, as the repository's `openapi.json` holds it (`make openapi`).

    The document depends on no setting, so it is built from the defaults alone, read from
    neither the environment nor `.env`: the same on every machine.
    """
    from wa_outbound.app import create_app

    document = create_app(Settings.model_construct()).openapi()
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from wa_outbound.app import create_app

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    if not args.no_migrate:
        asyncio.run(_migrate(settings))
    # The demo organisation, and its key on stdout, only for `make run`: the sandbox on SQLite.
    # On PostgreSQL (even with WA_PROVIDER=sandbox said on purpose) organisations are created
    # with `wa-outbound orgs create`, and no key is ever printed by `serve`.
    if settings.provider == "sandbox" and not settings.is_postgres:
        demo = asyncio.run(_bootstrap_sandbox(settings))
        if demo is not None:
            print(
                "sandbox: created organisation 'demo'; its API key (shown only once):\n"
                f"  {demo['api_key']}",
                flush=True,
            )
    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=True,
        # An idle keep-alive connection is closed after 30 s (behind a load balancer, keep its
        # idle timeout shorter than this). On SIGTERM, requests in flight get the same grace as
        # the background workers; then uvicorn closes what is left.
        timeout_keep_alive=30,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wa-outbound", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations and serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")

    commands.add_parser("migrate", help="apply database migrations")

    org_cmd = commands.add_parser("orgs", help="manage organisations")
    org_sub = org_cmd.add_subparsers(dest="org_command", required=True)
    create = org_sub.add_parser("create", help="create an organisation and an API key")
    create.add_argument("name")
    create.add_argument(
        "--id", dest="org_id", default=None, help="organisation id (default: generated)"
    )

    secrets_cmd = commands.add_parser("secrets", help="manage stored secrets")
    secrets_sub = secrets_cmd.add_subparsers(dest="secrets_command", required=True)
    secrets_sub.add_parser(
        "reencrypt",
        help="rewrite every stored secret with the first key of WA_SECRET_KEYS, so that the "
        "other keys can be removed",
    )

    openapi = commands.add_parser("openapi", help="print the HTTP API's OpenAPI document")
    openapi.add_argument("--output", type=Path, help="write it to this file instead of stdout")

    ops.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "migrate":
        settings = _settings()
        asyncio.run(_migrate(settings))
        print("migrations applied", file=sys.stderr)
    elif args.command == "orgs":
        settings = _settings()
        asyncio.run(_migrate(settings))
        print(json.dumps(asyncio.run(_create_org(settings, args.name, args.org_id))))
    elif args.command in ops.COMMANDS:
        ops.run(args, _settings())
    elif args.command == "secrets":
        _reencrypt_command(_settings())
    elif args.command == "openapi":
        if args.output is None:  # UTF-8 whatever the locale: the document is not all ASCII
            sys.stdout.buffer.write(openapi_json().encode())
        else:
            args.output.write_text(openapi_json(), encoding="utf-8")
