"""Meta's 131050 (the user stopped marketing messages): the message fails with
`marketing_opted_out`, not dead-lettered (sending it again would fail again), and the recipient's
consent gets `marketing_opt_out` in the transaction that writes the outcome."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.contacts.consents import MARKETING_OPTED_OUT, META_STOPPED_CODE, mark_stopped
from wa_outbound.dispatch.claims import Claimed
from wa_outbound.dispatch.outcomes import Outcome
from wa_outbound.status import Status
from wa_outbound.whatsapp.retry import ProviderError

META_CODE = META_STOPPED_CODE


def stopped_by_meta(message: Claimed, error: ProviderError) -> Outcome:
    mine = ProviderError(
        code=MARKETING_OPTED_OUT,
        title=error.title,
        message=error.message,
        details=f"Meta error {META_CODE}" + (f": {error.details}" if error.details else ""),
        http_status=error.http_status,
    )
    return Outcome(message, Status.FAILED, "failed", error=mine, details={"meta_code": META_CODE})


async def flag_recipients(conn: AsyncConnection, results: list[Outcome]) -> None:
    """Mark the recipients Meta said stopped marketing messages."""
    ids = [o.message.id for o in results if o.details.get("meta_code") == META_CODE]
    await mark_stopped(conn, ids, source=f"meta:{META_CODE}", actor="dispatcher")
