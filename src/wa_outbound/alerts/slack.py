"""Alerts to a Slack incoming webhook (httpx): one attachment coloured by severity."""

from __future__ import annotations

import httpx

from wa_outbound.alerts import render
from wa_outbound.alerts.model import Notice

SLACK_TIMEOUT_S = 10.0


class SlackNotifier:
    """Posts each notice to the webhook URL; any answer but 2xx is a failure."""

    name = "slack"

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout_s: float = SLACK_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = webhook_url
        self._timeout_s = timeout_s
        self._transport = transport

    async def send(self, notice: Notice) -> None:
        # A client per notice: alerts are rare, and nothing outlives the call.
        async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as client:
            response = await client.post(self._url, json=render.slack(notice))
            response.raise_for_status()
