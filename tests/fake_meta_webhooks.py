"""Status webhooks from the fake Meta Graph API back to the service: signed envelopes, batched,
retried on any answer but 200 as Meta does. Used by `fake_meta.FakeMeta`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from meta_payloads import PHONE_NUMBER_ID, envelope, sign, status

# The statuses a delivered-and-read message goes through, in Meta's order.
LIFECYCLE = ("sent", "delivered", "read")
# How long close() lets in-flight deliveries finish before cancelling them.
CLOSE_GRACE_S = 2.0


class StatusWebhooks:
    """Posts `X-Hub-Signature-256`-signed envelopes to `url`.

    `queue(wamid, recipient)` is the hot path (an append); a flusher task turns what gathered
    every `flush_interval_s` into envelopes of at most `batch_size` statuses and posts them
    concurrently, each retried up to `attempts` times with doubling delays (at most
    `retry_delay_max_s`)."""

    def __init__(
        self,
        url: str,
        app_secret: str,
        *,
        phone_number_id: str = PHONE_NUMBER_ID,
        batch_size: int = 100,
        flush_interval_s: float = 0.005,
        attempts: int = 4,
        retry_delay_s: float = 0.05,
        retry_delay_max_s: float = 60.0,
        concurrency: int = 16,
    ) -> None:
        self.url = url
        self._secret = app_secret
        self._phone_number_id = phone_number_id
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._attempts = attempts
        self._retry_delay_s = retry_delay_s
        self._retry_delay_max_s = retry_delay_max_s
        self._concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        # (wamid, recipient, number, the send's biz_opaque_callback_data)
        self._pending: list[tuple[str, str, str, str | None]] = []
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.posted = 0  # envelopes answered 200
        self.failed_attempts = 0  # answered other than 200, or not at all
        self.given_up = 0  # envelopes dropped after the last attempt

    async def start(self) -> None:
        # Fresh primitives bound to the serving loop (a fake may be served more than once).
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(self._concurrency)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._flusher = asyncio.create_task(self._run(), name="fake-meta-status-flusher")

    async def close(self) -> None:
        """Flushes what is queued, lets deliveries finish for a moment, then closes the session."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        self._flush()
        if self._deliveries:
            _, late = await asyncio.wait(self._deliveries, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def queue(
        self,
        wamid: str,
        recipient: str,
        phone_number_id: str | None = None,
        callback_data: str | None = None,
    ) -> None:
        """Schedules `sent`, `delivered` and `read` for an accepted send from `phone_number_id`
        (by default the fake's number): each envelope names the number its statuses are for,
        and each status echoes the send's `callback_data` when it had some."""
        number = phone_number_id or self._phone_number_id
        self._pending.append((wamid, recipient, number, callback_data))
        self._wake.set()

    def counts(self) -> dict[str, int]:
        return {
            "queued": len(self._pending) * len(LIFECYCLE),
            "posted": self.posted,
            "failed_attempts": self.failed_attempts,
            "given_up": self.given_up,
        }

    def reset(self) -> None:
        self._pending.clear()
        self.posted = self.failed_attempts = self.given_up = 0

    async def post(self, statuses: list[dict[str, Any]], phone_number_id: str | None = None) -> int:
        """Posts one signed envelope about `phone_number_id` (by default the fake's number) now,
        once; returns the HTTP status."""
        if self._session is None:
            raise RuntimeError("status webhooks are not started (is the fake being served?)")
        number = phone_number_id or self._phone_number_id
        metadata = {"display_phone_number": "15550000000", "phone_number_id": number}
        raw = orjson.dumps(envelope(statuses=statuses, value_extra={"metadata": metadata}))
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(raw, self._secret),
        }
        async with self._limit, self._session.post(self.url, data=raw, headers=headers) as response:
            await response.read()
            return response.status

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Let a batch gather, as Meta groups statuses that happen close together.
            await asyncio.sleep(self._flush_interval_s)
            self._flush()

    def _flush(self) -> None:
        self._wake.clear()
        pending, self._pending = self._pending, []
        by_number: dict[str, list[dict[str, Any]]] = {}
        for wamid, recipient, number, callback in pending:
            by_number.setdefault(number, []).extend(
                status(wamid, value, recipient_id=recipient, callback_data=callback)
                for value in LIFECYCLE
            )
        for number, statuses in by_number.items():
            for start in range(0, len(statuses), self._batch_size):
                batch = statuses[start : start + self._batch_size]
                task = asyncio.create_task(
                    self._deliver(batch, number), name="fake-meta-status-delivery"
                )
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, statuses: list[dict[str, Any]], number: str) -> None:
        for attempt in range(self._attempts):
            try:
                if await self.post(statuses, number) == 200:
                    self.posted += 1
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass  # the service is down or slow: retry like any other failure
            self.failed_attempts += 1
            if attempt + 1 < self._attempts:
                await asyncio.sleep(min(self._retry_delay_s * 2**attempt, self._retry_delay_max_s))
        self.given_up += 1
