"""Alerts to a Slack incoming webhook (httpx): one attachment coloured by severity.

The webhook URL is a secret (whoever has it can post to the channel), and httpx's errors quote
the URL they were sending to: a failure is re-raised as `SlackError`, whose message says what
went wrong without it, and without the original error chained to it.
"""

from __future__ import annotations

import httpx

from wa_outbound.alerts import render
from wa_outbound.alerts.model import Notice

SLACK_TIMEOUT_S = 10.0


class SlackError(Exception):
    """Slack did not take the notice; the message never carries the webhook URL."""


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
        try:
            await self._post(notice)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise SlackError(f"the Slack webhook answered {status}") from None
        except Exception as exc:  # a transport error, or a malformed URL: never its text
            raise SlackError(
                f"the Slack webhook could not be reached: {type(exc).__name__}"
            ) from None

    async def _post(self, notice: Notice) -> None:
        # A client per notice: alerts are rare, and nothing outlives the call.
        async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as client:
            response = await client.post(self._url, json=render.slack(notice))
            response.raise_for_status()
