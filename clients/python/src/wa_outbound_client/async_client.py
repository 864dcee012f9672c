"""The asynchronous client."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import httpx

from wa_outbound_client import _calls
from wa_outbound_client import async_resources as resources
from wa_outbound_client._retry import RetryPolicy, retry_after_s
from wa_outbound_client.client import headers_for
from wa_outbound_client.errors import TransportError, error_from_response


class AsyncClient:
    """`AsyncClient("https://wa.example.com", "wao_...")`. With the admin token instead of a key,
    `org_id` names the organisation it acts for (senders, webhook endpoints, quota).

    Use it as an async context manager, or await `aclose()`. `http_client` lets you bring your own
    `httpx.AsyncClient` (proxies, TLS, transports); its base URL and headers are left alone, and
    it is not closed by this client. `timeout_s` applies to each attempt.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        org_id: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout_s)
        self._base_url = base_url.rstrip("/")
        self._headers = headers_for(api_key, org_id)
        self._retry = retry or RetryPolicy()
        self.messages = resources.Messages(self)
        self.consents = resources.Consents(self)
        self.contacts = resources.Contacts(self)
        self.dlq = resources.DeadLetterQueue(self)
        self.quota = resources.Quotas(self)
        self.senders = resources.Senders(self)
        self.webhook_endpoints = resources.WebhookEndpoints(self)

    async def request(self, call: _calls.Call) -> httpx.Response:
        """Sends `call`, retrying it as the policy allows; raises the API's error as a typed
        exception, or `TransportError` when no answer came."""
        headers = {**self._headers, **(call.headers or {})}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    call.method,
                    self._base_url + call.path,
                    params=call.params,
                    json=call.body,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                delay_s = self._retry.after_exception(
                    attempt=attempt, exc=exc, replay_safe=call.replay_safe
                )
                if delay_s is None:
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    return response
                wait_s = retry_after_s(response.headers.get("Retry-After"))
                delay_s = self._retry.after_response(
                    attempt=attempt,
                    status=response.status_code,
                    retry_after_s=wait_s,
                    replay_safe=call.replay_safe,
                )
                if delay_s is None:
                    raise error_from_response(response.status_code, response.content, wait_s)
            await asyncio.sleep(delay_s)

    async def json(self, call: _calls.Call) -> Any:
        return (await self.request(call)).json()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
