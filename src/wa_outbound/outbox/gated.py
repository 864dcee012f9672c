"""Queueing with the template gate's one question to Meta: a template the registry of a synced
WABA does not know is looked up by name (`?name=`) before it is refused, outside any
transaction, and the call is decided again with what Meta said."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.outbox.enqueue import Outcome, enqueue
from wa_outbound.templates import gate

LookUp = Callable[[str, str], Awaitable[bool]]
"""(waba_id, name) → whether Meta could be asked (what it lists is then in the registry)."""


class _AskMeta(Exception):
    def __init__(self, keys: set[gate.TemplateKey]) -> None:
        super().__init__()
        self.keys = keys


async def enqueue_gated(engine: AsyncEngine, look_up: LookUp | None, **call: Any) -> list[Outcome]:
    """`outbox.enqueue` in a transaction of its own; `call` holds its keyword arguments."""
    try:
        async with engine.begin() as conn:
            outcomes = await enqueue(conn, **call)
            missing = gate.unknown([o.error for o in outcomes])
            if missing and look_up is not None:
                raise _AskMeta(missing)  # rolls this decision back: it is taken again below
            return outcomes
    except _AskMeta as ask:
        keys = ask.keys
    advisory: set[gate.TemplateKey] = set()
    for waba_id, name in sorted({(waba_id, name) for waba_id, name, _ in keys}):
        assert look_up is not None
        if not await look_up(waba_id, name):
            # Meta could not be asked: the registry is advisory for these.
            advisory |= {key for key in keys if key[:2] == (waba_id, name)}
    async with engine.begin() as conn:
        return await enqueue(conn, advisory=advisory, **call)
