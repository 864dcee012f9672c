"""Posting one attempt: one aiohttp session per worker, and the SSRF guard at every delivery.

The URL is checked and its host resolved (callbacks.urls) before every attempt, and the
connection goes to the very addresses checked: the session's resolver never looks a name up
itself, it answers with the addresses this attempt pinned (`PinnedResolver`), while the URL keeps
the host name for TLS (SNI, certificate) and `Host`. Proxy variables are ignored, redirects are
not followed, and at most `callback_per_host_connections` connections go to one host.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from typing import NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from wa_outbound.callbacks import urls
from wa_outbound.callbacks.policy import URL_NOT_ALLOWED, Answer
from wa_outbound.config import Settings
from wa_outbound.errors import UrlNotAllowed

# Of an answer's body only this much is read (the connection is then closed, not reused).
MAX_ANSWER_BYTES = 64 * 1024


class PinnedResolver(AbstractResolver):
    """Answers with the addresses an attempt checked for its host; refuses any other name."""

    def __init__(self) -> None:
        self._pinned: dict[tuple[str, int], list[str]] = {}

    def pin(self, host: str, port: int, addresses: list[str]) -> None:
        # Only ever checked addresses: a name re-pointed at an internal one fails the check and
        # is never pinned. The latest check of a host wins for its next connection.
        self._pinned[(host, port)] = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._pinned.get((host, port))
        if not addresses:
            raise OSError(f"{host}:{port} was not checked before connecting")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        self._pinned.clear()


class Request(NamedTuple):
    url: str
    body: bytes
    headers: dict[str, str]


class Transport:
    """The worker's HTTP client. Created inside the running loop; `close()` when done."""

    def __init__(self, settings: Settings) -> None:
        self._allow_insecure = settings.callback_allow_insecure
        self._resolver = PinnedResolver()
        connector = aiohttp.TCPConnector(
            limit=max(settings.callback_concurrency, settings.callback_per_host_connections),
            limit_per_host=settings.callback_per_host_connections,
            resolver=self._resolver,
            # The resolver must be asked for every new connection: no cache of its answers.
            use_dns_cache=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.callback_timeout_seconds),
            trust_env=False,
            auto_decompress=False,
            # aiohttp adds its own Accept, Accept-Encoding and User-Agent to a request that
            # has none: the session's defaults hold all three (cheaper per request than
            # `skip_auto_headers`). The answer is only drained, never decoded: no compression.
            headers={
                "User-Agent": "wa-outbound-webhooks/1",
                "Accept": "*/*",
                "Accept-Encoding": "identity",
            },
        )

    async def post(self, request: Request) -> Answer:
        """One attempt: an answer with a status code, or with the error that prevented one."""
        started = time.perf_counter()
        try:
            target = _checked(request.url, self._allow_insecure)
            addresses = _literal_addresses(target, self._allow_insecure)
            if addresses is None:
                addresses = await urls.resolve(target, allow_insecure=self._allow_insecure)
        except UrlNotAllowed:
            return Answer(error=URL_NOT_ALLOWED, elapsed_s=time.perf_counter() - started)
        self._resolver.pin(target.host, target.port, addresses)
        try:
            async with self._session.post(
                request.url, data=request.body, headers=request.headers, allow_redirects=False
            ) as response:
                await _drain(response)
                return Answer(
                    status_code=response.status,
                    retry_after=response.headers.get("Retry-After"),
                    elapsed_s=time.perf_counter() - started,
                )
        except TimeoutError:
            return Answer(error="timeout", elapsed_s=time.perf_counter() - started)
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            return Answer(error=error, elapsed_s=time.perf_counter() - started)

    async def close(self) -> None:
        await self._session.close()


@functools.lru_cache(maxsize=4096)
def _checked(url: str, allow_insecure: bool) -> urls.Target:
    """`urls.check_url`, remembered: it depends on the URL's text only (a refusal is not
    remembered, so it is checked again and refused again)."""
    return urls.check_url(url, allow_insecure=allow_insecure)


@functools.lru_cache(maxsize=4096)
def _literal_addresses(target: urls.Target, allow_insecure: bool) -> list[str] | None:
    """A literal IP's checked address, remembered (nothing to look up); None for a host name,
    which is resolved and checked at every attempt."""
    try:
        ipaddress.ip_address(target.host.strip("[]"))
    except ValueError:
        return None
    # Checked by check_url already; resolve() says the same, without a lookup.
    return [str(ipaddress.ip_address(target.host.strip("[]")))]


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the answer's body (so the connection can be reused), up to MAX_ANSWER_BYTES."""
    content = response.content
    read = 0
    # Till the end of the body; a short one is usually whole after its first read.
    while not content.at_eof():
        chunk = await content.read(MAX_ANSWER_BYTES)
        if not chunk:
            return
        read += len(chunk)
        if read > MAX_ANSWER_BYTES:
            response.close()
            return
