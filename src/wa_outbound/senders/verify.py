"""Asking Meta about a number before a sender is stored or its token replaced. The sandbox has
no Meta: it confirms every number, with a made-up display number."""

from __future__ import annotations

from wa_outbound.config import Settings
from wa_outbound.errors import SenderVerificationFailed
from wa_outbound.whatsapp.graph import GraphError, NumberInfo, describe_number


async def verify_number(
    settings: Settings, *, phone_number_id: str, waba_id: str, token: str
) -> NumberInfo:
    """What Meta says of the number, asked with `token`; SenderVerificationFailed with Meta's
    error in `details` if it does not confirm it."""
    if settings.provider == "sandbox":
        digits = "".join(ch for ch in phone_number_id if ch.isdigit())[-7:].rjust(7, "0")
        return NumberInfo(f"+1 555-{digits}", "GREEN", None)
    try:
        return await describe_number(
            base_url=settings.graph_api_base_url,
            version=settings.graph_api_version,
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            token=token,
        )
    except GraphError as exc:
        raise SenderVerificationFailed(meta=str(exc), **exc.details) from exc
