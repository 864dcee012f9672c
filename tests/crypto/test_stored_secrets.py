"""The stored secrets on the real databases: `reencrypt` (rotation) and the start-up check's
walk over them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crypto_helpers import new_key, set_token, stored_tokens
from factories import insert_org, insert_sender
from wa_outbound.crypto import (
    Keyring,
    NoEncryptionKey,
    StoredSecretUnreadable,
    check_stored_secrets,
    reencrypt,
)
from wa_outbound.db.schema import sender
from wa_outbound.db.types import utcnow
from wa_outbound.senders.store import ensure_shared_sender

OLD, NEW = new_key(), new_key()


async def senders_with(engine: AsyncEngine, stored: list[str]) -> list[uuid.UUID]:
    """One org's senders, holding these stored tokens in this order; and the shared sender
    (no token) beside them."""
    async with engine.begin() as conn:
        org_id = await insert_org(conn)
        ids = [await insert_sender(conn, org_id) for _ in stored]
        await ensure_shared_sender(
            conn, phone_number_id="sandbox", waba_id=None, display_phone_number=None, now=utcnow()
        )
    for sender_id, value in zip(ids, stored, strict=True):
        await set_token(engine, sender_id, value)
    return ids


async def test_reencrypt_lets_the_old_key_be_removed(db_engine: AsyncEngine) -> None:
    old, new = Keyring([OLD]), Keyring([NEW])
    stored = [old.encrypt("token-a"), "plain:token-b", new.encrypt("token-c"), old.encrypt("d")]
    ids = await senders_with(db_engine, stored)
    rotated = Keyring([NEW, OLD])

    assert await reencrypt(db_engine, rotated, batch_size=2) == 3
    after = await stored_tokens(db_engine)
    assert after[ids[2]] == stored[2], "a secret already under the first key is left alone"
    assert [new.decrypt(after[i] or "") for i in ids] == ["token-a", "token-b", "token-c", "d"]
    assert all(rotated.is_current(after[i] or "") for i in ids)
    assert (await check_stored_secrets(db_engine, new)).checked == 4
    assert await reencrypt(db_engine, rotated) == 0, "a second run has nothing left to do"


async def test_the_check_counts_what_is_not_under_the_first_key(db_engine: AsyncEngine) -> None:
    old = Keyring([OLD])
    await senders_with(db_engine, [old.encrypt("a"), "plain:b", Keyring([NEW]).encrypt("c")])
    report = await check_stored_secrets(db_engine, Keyring([NEW, OLD]), batch_size=1)
    assert (report.checked, report.not_current) == (3, 2)


async def test_a_secret_no_key_decrypts_is_named_by_its_row(db_engine: AsyncEngine) -> None:
    ids = await senders_with(
        db_engine, [Keyring([NEW]).encrypt("fine"), Keyring([OLD]).encrypt("lost-token")]
    )
    for attempt in (check_stored_secrets, reencrypt):
        with pytest.raises(StoredSecretUnreadable) as info:
            await attempt(db_engine, Keyring([NEW]))
        message = str(info.value)
        assert f"sender row {ids[1]}" in message
        assert "WA_SECRET_KEYS" in message
        assert "lost-token" not in message
    assert (await stored_tokens(db_engine))[ids[0]] is not None


async def test_reencrypt_refuses_without_a_key(db_engine: AsyncEngine) -> None:
    ids = await senders_with(db_engine, ["plain:token"])
    with pytest.raises(NoEncryptionKey, match="WA_SECRET_KEYS is empty"):
        await reencrypt(db_engine, Keyring([]))
    assert (await stored_tokens(db_engine))[ids[0]] == "plain:token"


async def test_reencrypt_never_overwrites_a_token_changed_meanwhile(
    pg_engine: AsyncEngine,
) -> None:
    """A PATCH of the token commits between reencrypt's read and its write: the row keeps the
    PATCHed token (PostgreSQL re-checks the guard on the row version it waited for)."""
    old, rotated = Keyring([OLD]), Keyring([NEW, OLD])
    ids = await senders_with(pg_engine, [old.encrypt("first"), old.encrypt("second")])
    patched = rotated.encrypt("patched")
    async with pg_engine.connect() as patch:
        transaction = await patch.begin()
        await patch.execute(
            sender.update().where(sender.c.id == ids[1]).values(access_token=patched)
        )
        running = asyncio.create_task(reencrypt(pg_engine, rotated))

        async def reencrypt_waits_on_the_row() -> bool:
            async with pg_engine.connect() as conn:
                waiting = await conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            return bool(waiting)

        async with asyncio.timeout(20):
            while not await reencrypt_waits_on_the_row():
                assert not running.done(), running
                await asyncio.sleep(0.02)
        await transaction.commit()
    assert await running == 1, "only the row that still held what was read is rewritten"
    after = await stored_tokens(pg_engine)
    assert after[ids[1]] == patched
    assert rotated.decrypt(after[ids[0]] or "") == "first"
    assert rotated.is_current(after[ids[0]] or "")
