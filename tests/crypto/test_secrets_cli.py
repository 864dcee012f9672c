"""`wa-outbound secrets reencrypt`, and `serve` refusing what it cannot decrypt: run as real
processes, from a directory other than the repository."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from crypto_helpers import new_key, set_token, stored_tokens
from factories import engine_for, insert_org, insert_sender
from wa_outbound.crypto import Keyring

CLI = [sys.executable, "-m", "wa_outbound.cli"]
OLD, NEW = new_key(), new_key()


async def run(cwd: Path, *args: str, **env: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    environment |= {"WA_LOG_FORMAT": "text", **env}
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=cwd,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def senders_holding(engine: AsyncEngine, *stored: str) -> list[str]:
    ids = []
    async with engine.begin() as conn:
        org_id = await insert_org(conn)
        ids = [await insert_sender(conn, org_id) for _ in stored]
    for sender_id, value in zip(ids, stored, strict=True):
        await set_token(engine, sender_id, value)
    return [str(sender_id) for sender_id in ids]


async def test_reencrypt_rewrites_the_secrets_so_the_old_key_can_go(
    tmp_path: Path, sqlite_url: str
) -> None:
    old = Keyring([OLD])
    async with engine_for(sqlite_url) as engine:
        await senders_holding(engine, old.encrypt("tok-1"), "plain:tok-2", old.encrypt("tok-3"))
        code, out, err = await run(
            tmp_path,
            "secrets",
            "reencrypt",
            WA_DATABASE_URL=sqlite_url,
            WA_SECRET_KEYS=f"{NEW},{OLD}",
        )
        assert code == 0, err
        assert out.startswith("3 stored secrets re-encrypted")
        assert "tok-" not in out + err
        after = await stored_tokens(engine)
    assert sorted(Keyring([NEW]).decrypt(value or "") for value in after.values()) == [
        "tok-1",
        "tok-2",
        "tok-3",
    ]


async def test_reencrypt_stops_on_a_secret_no_key_decrypts(tmp_path: Path, sqlite_url: str) -> None:
    async with engine_for(sqlite_url) as engine:
        (lost,) = await senders_holding(engine, Keyring([OLD]).encrypt("lost-token"))
    code, _, err = await run(
        tmp_path, "secrets", "reencrypt", WA_DATABASE_URL=sqlite_url, WA_SECRET_KEYS=NEW
    )
    assert code == 1
    assert f"sender row {lost}" in err
    assert "Traceback" not in err


async def test_reencrypt_refuses_without_keys(tmp_path: Path, sqlite_url: str) -> None:
    code, out, err = await run(tmp_path, "secrets", "reencrypt", WA_DATABASE_URL=sqlite_url)
    assert code == 1
    assert "WA_SECRET_KEYS is empty" in err
    assert out == ""


async def test_serve_stops_at_start_up_on_a_secret_no_key_decrypts(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with engine_for(sqlite_url) as engine:
        (lost,) = await senders_holding(engine, Keyring([OLD]).encrypt("lost-token"))
    code, out, err = await run(
        tmp_path,
        "serve",
        "--no-migrate",
        "--port",
        "0",
        WA_DATABASE_URL=sqlite_url,
        WA_SECRET_KEYS=NEW,
        WA_ALERT_ENABLED="false",
    )
    assert code != 0
    assert f"sender row {lost}" in out + err
    assert "lost-token" not in out + err


async def test_serve_with_cloud_and_no_key_refuses_naming_the_variable(tmp_path: Path) -> None:
    code, _, err = await run(
        tmp_path,
        "serve",
        WA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        WA_PROVIDER="cloud",
        WA_PHONE_NUMBER_ID="1234567890",
        WA_ACCESS_TOKEN="access-token",
        WA_APP_SECRET="app-secret",
    )
    assert code == 2
    assert "WA_SECRET_KEYS" in err
    assert "access-token" not in err
    assert "Traceback" not in err


async def test_a_malformed_key_is_refused_by_position_without_echoing_it(tmp_path: Path) -> None:
    malformed = "my-password-is-not-a-key"
    code, out, err = await run(
        tmp_path,
        "secrets",
        "reencrypt",
        WA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        WA_SECRET_KEYS=f"{NEW},{malformed}",
    )
    assert code == 2
    assert "WA_SECRET_KEYS" in err
    assert "key 2 of 2" in err
    assert malformed not in out + err
    assert NEW not in out + err
