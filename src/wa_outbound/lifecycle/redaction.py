"""Tokens that replace erased data: `redacted:` + the hex HMAC-SHA256 of the value under the
deployment's erasure key. The same value always gives the same token, so a redacted recipient
still counts once in the WABA's messaging limit and two erased rows about one person still
match, while nobody without the key can tell whose number it was."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from typing import Any

from wa_outbound.status import REPLY_TO

PREFIX = "redacted:"
# Keys whose strings say how a message is built, not what it says: kept. Every other string of
# a message's content (template parameters, text bodies, captions, interactive bodies, media
# links and ids, metadata values) is replaced.
STRUCTURE = frozenset(
    {"name", "language", "code", "policy", "type", "sub_type", "index", "preview_url", REPLY_TO}
)
# An inbound message's structure: its wamid, type, time, and the business message it replies to.
INBOUND_STRUCTURE = frozenset({"id", "type", "timestamp", "context"})


class Redactor:
    """Redacts one contact: the phone number wherever it appears, and the texts it was sent or
    sent (collected as they are found, so later rows lose them too)."""

    def __init__(self, key: bytes, phone: str) -> None:
        self._key = key
        self.phone = phone
        self.digits = phone.lstrip("+")
        self.phone_token = self.token(phone)
        self.texts: set[str] = set()

    def token(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return PREFIX + digest.hexdigest()

    def is_phone(self, value: object) -> bool:
        return isinstance(value, str) and value in (self.phone, self.digits)

    def text(self, value: str | None) -> str | None:
        """A string that may hold the number (an error message, a key): the number replaced."""
        if value is None or value.startswith(PREFIX):
            return value
        if value in self.texts or self.is_phone(value):
            return self.token(value) if value in self.texts else self.phone_token
        # The number with + first: its digits are inside it.
        return value.replace(self.phone, self.phone_token).replace(self.digits, self.phone_token)

    def scrub(self, value: Any) -> Any:
        """`value` (decoded JSON) with the number replaced wherever it appears, and the texts
        already known to be the contact's replaced where they are a whole string."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        return value

    def content(self, value: Any, *, keep: Collection[str] = STRUCTURE, key: str = "") -> Any:
        """What was sent or received: every string replaced but those under a `keep` key (the
        replaced ones are remembered as the contact's texts)."""
        if key in keep:
            return value
        if isinstance(value, dict):
            return {k: self.content(v, keep=keep, key=k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.content(item, keep=keep, key=key) for item in value]
        if isinstance(value, str) and not value.startswith(PREFIX):
            if not self.is_phone(value):
                self.texts.add(value)
            return self.phone_token if self.is_phone(value) else self.token(value)
        return value
