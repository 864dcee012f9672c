"""Meta's WhatsApp Cloud API over one shared aiohttp session."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp.client_proto import ResponseHandler

from wa_outbound import text
from wa_outbound.config import Settings
from wa_outbound.whatsapp.provider import OutgoingMessage, SendResult, request_body
from wa_outbound.whatsapp.retry import ProviderError

# At most this many connections are being opened at once. A cold replica's first batch would
# otherwise open one per concurrent send at the same instant (64 by default): a server, proxy or
# load balancer whose listen queue overflows drops the excess handshakes, and the kernel retries
# them only after 1, 3 and 7 seconds, so the whole first batch stalls for seconds and its sends
# time out after the server got them (duplicates). Opened a few at a time, the pool fills in
# milliseconds and the established connections are reused.
MAX_CONNECTING = 8
# Failures to connect: no request was written, so Meta cannot have the message. Every other
# transport failure (a timeout, a connection dropped or reset, a truncated answer) may come
# after Meta took it: the send's outcome is unknown.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class _GradualConnector(aiohttp.TCPConnector):
    """A TCPConnector that opens at most `MAX_CONNECTING` connections at a time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._opening = asyncio.Semaphore(MAX_CONNECTING)

    async def _create_connection(self, *args: Any, **kwargs: Any) -> ResponseHandler:
        async with self._opening:
            return await super()._create_connection(*args, **kwargs)


class CloudProvider:
    name = "cloud"

    def __init__(self, settings: Settings) -> None:
        self._base = f"{settings.graph_api_base_url.rstrip('/')}/{settings.graph_api_version}"
        self._shared_number = settings.phone_number_id
        self._shared_token = settings.access_token.get_secret_value()
        # Built once per sender (number) and per token, not per send.
        self._urls: dict[str, str] = {}
        self._headers: dict[str, dict[str, str]] = {}
        # One session for every send; its pool is as large as the dispatcher's concurrency.
        self._session = aiohttp.ClientSession(
            connector=_GradualConnector(
                limit=settings.dispatch_concurrency, ttl_dns_cache=300, keepalive_timeout=30
            ),
            timeout=aiohttp.ClientTimeout(
                total=settings.send_timeout_seconds, connect=min(5.0, settings.send_timeout_seconds)
            ),
        )

    def _target(self, message: OutgoingMessage) -> tuple[str, dict[str, str]]:
        number = message.phone_number_id or self._shared_number
        token = message.token or self._shared_token
        url = self._urls.get(number)
        if url is None:
            url = self._urls[number] = f"{self._base}/{number}/messages"
        headers = self._headers.get(token)
        if headers is None:
            if len(self._headers) > 10_000:
                self._headers.clear()
            headers = self._headers[token] = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            }
        return url, headers

    async def send(self, message: OutgoingMessage) -> SendResult:
        data = orjson.dumps(request_body(message))
        url, headers = self._target(message)
        try:
            async with self._session.post(url, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(
                error=ProviderError(
                    code="transport_error",
                    title=type(exc).__name__,
                    message=str(exc) or "no answer",
                    transport=True,
                    ambiguous=not isinstance(exc, _NOT_SENT),
                )
            )
        body = _json(raw)
        if 200 <= status < 300:
            wamid = _wamid(body)
            if wamid is not None:
                return SendResult(wamid=wamid)
            return SendResult(
                error=ProviderError(
                    code="invalid_response",
                    title="No message id in Meta's answer",
                    message=_excerpt(raw),
                    http_status=status,
                )
            )
        return SendResult(error=_error(body, status, raw, retry_after))

    async def close(self) -> None:
        await self._session.close()


# What Meta answers is stored with the message: read with the characters PostgreSQL cannot store
# (NUL) replaced, or writing the outcome would fail and the message would be sent again.
def _json(raw: bytes) -> Any:
    try:
        return text.decoded_storable(raw)
    except orjson.JSONDecodeError:
        return None


def _excerpt(raw: bytes) -> str:
    return text.storable(raw[:300].decode(errors="replace"))


def _wamid(body: Any) -> str | None:
    try:
        wamid = body["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return wamid if isinstance(wamid, str) and wamid else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _error(body: Any, status: int, raw: bytes, retry_after: float | None) -> ProviderError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int | str):
        return ProviderError(
            code=f"http_{status}",
            title=f"HTTP {status}",
            message=_excerpt(raw),
            http_status=status,
            retry_after_s=retry_after,
        )
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    return ProviderError(
        code=str(error["code"]),
        title=str(error.get("error_user_title") or error.get("type") or f"error {error['code']}"),
        message=str(error.get("message") or ""),
        details=str(details) if details is not None else None,
        http_status=status,
        retry_after_s=retry_after,
    )
