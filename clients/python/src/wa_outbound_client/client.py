"""The synchronous client."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

from wa_outbound_client import _calls, resources
from wa_outbound_client._retry import RetryPolicy, retry_after_s
from wa_outbound_client.errors import TransportError, error_from_response

USER_AGENT = "wa-outbound-client/0.1"


def headers_for(api_key: str, org_id: str | None) -> dict[str, str]:
    """Every request's headers: the key (or admin token), and `X-Org-Id` when the admin token
    acts for an organisation."""
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
    if org_id is not None:
        headers["X-Org-Id"] = org_id
    return headers


class Client:
    """`Client("https://wa.example.com", "wao_...")`. With the admin token instead of a key,
    `org_id` names the organisation it acts for (senders, webhook endpoints, quota).

    Use it as a context manager, or call `close()`. `http_client` lets you bring your own
    `httpx.Client` (proxies, TLS, transports); its base URL and headers are left alone, and
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
        http_client: httpx.Client | None = None,
    ) -> None:
        self._owned = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout_s)
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

    def request(self, call: _calls.Call) -> httpx.Response:
        """Sends `call`, retrying it as the policy allows; raises the API's error as a typed
        exception, or `TransportError` when no answer came."""
        headers = {**self._headers, **(call.headers or {})}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
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
            time.sleep(delay_s)

    def json(self, call: _calls.Call) -> Any:
        return self.request(call).json()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
