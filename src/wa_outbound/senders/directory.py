"""What the dispatcher needs of each sender to send: its number and its token, in clear.

Read afresh for every batch (one query for the batch's senders), so a new token is used from
the next batch on, on every replica; a token is decrypted only when its stored form changes.
The shared sender's number and token come from the settings."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.config import Settings
from wa_outbound.crypto import UndecryptableSecret
from wa_outbound.db.dialect import any_of
from wa_outbound.db.schema import SHARED_SENDER_ID, sender
from wa_outbound.db.types import utcnow
from wa_outbound.senders import health, store

s = sender.c
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    phone_number_id: str
    token: str | None
    """None: no key of this replica's WA_SECRET_KEYS decrypts the stored token (a rotation
    that has not reached this replica yet): its messages wait, nothing is sent."""
    stored_token: str | None
    """The token as stored (None: the shared sender's, from the settings): what a send used,
    so a token error pauses the sender only if it still has that token."""


def plain_only(stored: str) -> str:
    """Reads the clear form only; the keyring (wa_outbound.crypto) reads every form."""
    return stored.removeprefix("plain:")


class Directory:
    def __init__(
        self, engine: AsyncEngine, settings: Settings, decrypt: Callable[[str], str] = plain_only
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._decrypt = decrypt
        self._shared = Credentials(
            settings.shared_phone_number_id, settings.access_token.get_secret_value(), None
        )
        self._clear: dict[str, str] = {}  # stored token → token

    async def ensure_shared(self) -> None:
        """Keep the shared sender's row in step with the settings (its number and WABA). A
        start-up is how a new WA_ACCESS_TOKEN arrives, so it lifts a `token_invalid` pause of
        the shared sender: if the token is still refused, the next send pauses it again."""
        async with self._engine.begin() as conn:
            now = utcnow()
            await store.ensure_shared_sender(
                conn,
                phone_number_id=self._settings.shared_phone_number_id,
                waba_id=self._settings.shared_waba or None,
                display_phone_number=None,
                now=now,
            )
            await health.remove_reasons(
                conn,
                ["token_invalid"],
                now=now,
                actor="startup",
                sender_ids=[SHARED_SENDER_ID],
            )

    async def credentials(self, sender_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Credentials]:
        """The credentials of these senders; a sender that no longer exists (deleted while its
        message was claimed) is left out."""
        found: dict[uuid.UUID, Credentials] = {}
        own = {sender_id for sender_id in sender_ids if sender_id != SHARED_SENDER_ID}
        if len(own) < len(set(sender_ids)):
            found[SHARED_SENDER_ID] = self._shared
        if own:
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(s.id, s.phone_number_id, s.access_token).where(
                        any_of(conn, s.id, list(own))
                    )
                )
            for row in rows:
                if row.access_token is not None:
                    found[row.id] = Credentials(
                        row.phone_number_id, self._token(row.access_token), row.access_token
                    )
        return found

    def _token(self, stored: str) -> str | None:
        token = self._clear.get(stored)
        if token is None:
            try:
                token = self._decrypt(stored)
            except UndecryptableSecret:
                log.error("a sender's stored token does not decrypt with WA_SECRET_KEYS")
                return None
            if len(self._clear) > 10_000:
                self._clear.clear()
            self._clear[stored] = token
        return token
