"""A fake Meta Graph API (WhatsApp Cloud API) served over loopback for tests and benchmarks.

`POST /{version}/{phone_number_id}/messages` answers as Meta does: bearer-token check (401, code
190), minimal body validation (400, code 100), else 200 with a fresh wamid. Behaviour is scripted
per recipient (a FIFO of steps, then accept) or by number suffix; every request is recorded; each
accepted send can be followed by signed `sent`/`delivered`/`read` webhooks to the service.

In a test: `async with running_fake_meta(FakeMeta(token="t")) as base_url: ...`. For benchmarks:
`python tests/fake_meta.py --port 9100 [--token T] [--webhook-url U --app-secret S
--auto-statuses [--status-batch-size 1]]`, scripted and read through `POST /_fake/script`,
`POST /_fake/reset` and `GET /_fake/requests`. The process posts one status per webhook by
default, as Meta does at ordinary volumes (a test's `FakeMeta` batches 100 unless told).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from fake_meta_numbers import FakeNumber, Numbers
from fake_meta_records import Received, RecordedRequest
from fake_meta_steps import (
    Chaos,
    Scripts,
    Step,
    accept,
    delay,
    drop,
    hang,
    http_status,
    meta_error,
    step_from_json,
)
from fake_meta_templates import FakeTemplates
from fake_meta_transport import TRANSPORT, WithTransport
from fake_meta_validation import valid_send
from fake_meta_webhooks import StatusWebhooks
from meta_payloads import PHONE_NUMBER_ID, error_response, send_response
from serving import Server, serving

__all__ = [
    "FakeMeta",
    "Received",
    "RecordedRequest",
    "Step",
    "accept",
    "delay",
    "drop",
    "hang",
    "http_status",
    "meta_error",
    "running_fake_meta",
]


class FakeMeta:
    """The fake's state and its Starlette app (`.app`); serve it with `running_fake_meta`."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        phone_number_id: str | None = None,
        webhook_url: str | None = None,
        app_secret: str | None = None,
        auto_statuses: bool = False,
        status_batch_size: int = 100,
        status_flush_interval_s: float = 0.005,
        status_attempts: int = 4,
        status_concurrency: int = 16,
        max_records: int = 100_000,
        hang_s: float = 3600.0,
        chaos_seed: int | None = None,
    ) -> None:
        self.token = token
        self.phone_number_id = phone_number_id  # None: any id in the path is accepted
        self.auto_statuses = auto_statuses
        # Meta echoes a send's `biz_opaque_callback_data` in its statuses; False: as if the
        # service had sent none (what reconciliation is measured against).
        self.echo_callback_data = True
        self.hang_s = hang_s
        self.webhooks: StatusWebhooks | None = None
        if auto_statuses and webhook_url is None:
            raise ValueError("auto_statuses needs a webhook_url to post to")
        if webhook_url is not None:
            if not app_secret:
                raise ValueError("webhook_url needs an app_secret to sign with")
            self.webhooks = StatusWebhooks(
                webhook_url,
                app_secret,
                phone_number_id=phone_number_id or PHONE_NUMBER_ID,
                batch_size=status_batch_size,
                flush_interval_s=status_flush_interval_s,
                attempts=status_attempts,
                concurrency=status_concurrency,
                # Beyond a few attempts, retry steadily, as Meta does through an outage.
                retry_delay_max_s=1.0,
            )
        # A random prefix keeps wamids unique across fakes and restarts; the counter within one.
        self._wamid_prefix = f"wamid.FAKE.{uuid.uuid4().hex[:12]}."
        self._wamid_seq = itertools.count(1)
        self._authorization = f"Bearer {token}"
        self._unauthorized = orjson.dumps(
            error_response(190, "Invalid OAuth access token - Cannot parse access token")
        )
        self._invalid = orjson.dumps(error_response(100, "(#100) Invalid parameter"))
        self.received = Received(max_records)
        self._scripts = Scripts()
        self.chaos = None if chaos_seed is None else Chaos(chaos_seed)
        self._released = asyncio.Event()
        self.numbers = Numbers()
        self.templates = FakeTemplates(self.numbers)
        self.app: ASGIApp = WithTransport(
            Starlette(
                routes=[
                    Route(
                        "/{version}/{phone_number_id}/messages", self._messages, methods=["POST"]
                    ),
                    Route("/_fake/script", self._control_script, methods=["POST"]),
                    Route("/_fake/reset", self._control_reset, methods=["POST"]),
                    Route("/_fake/requests", self._control_requests, methods=["GET"]),
                    # After the control routes, which these patterns would match too.
                    Route(
                        "/{version}/{waba_id}/phone_numbers",
                        self.numbers.waba_numbers,
                        methods=["GET"],
                    ),
                    Route(
                        "/{version}/{waba_id}/message_templates",
                        self.templates.list,
                        methods=["GET"],
                    ),
                    Route("/{version}/{object_id}", self.numbers.read_object, methods=["GET"]),
                ],
                lifespan=self._lifespan,
            )
        )

    # Numbers ---------------------------------------------------------------------------------

    def add_number(
        self,
        phone_number_id: str,
        *,
        token: str,
        waba_id: str,
        display_phone_number: str | None = None,
        messaging_limit: Any = "TIER_2K",
        quality_rating: str = "GREEN",
    ) -> FakeNumber:
        """A business number with its own token: once any is added, a send is let through only
        to a known number with that number's token."""
        number = FakeNumber(
            phone_number_id,
            token,
            waba_id,
            display_phone_number or f"+1 555-{phone_number_id[-7:]}",
            quality_rating,
            messaging_limit,
        )
        self.numbers.add(number)
        return number

    def revoke_token(self, token: str) -> None:
        """Every later call with `token` answers 401, code 190."""
        self.numbers.revoked.add(token)

    # Scripting -------------------------------------------------------------------------------

    def script(self, to: str, *steps: Step) -> None:
        """Appends steps to `to`'s FIFO; each request to `to` takes one, then accept."""
        self._scripts.add(to.lstrip("+"), steps)

    def script_suffix(self, suffix: str, *steps: Step, once: bool = False) -> None:
        """Numbers ending with `suffix` get `steps` on every request, in a cycle (one step:
        always that); with `once`, each such number gets them once, then accept. No steps:
        the rule is removed. A number's own script comes first; the longest suffix wins."""
        self._scripts.add_suffix(suffix, steps, once=once)

    def reset(self) -> None:
        """Forgets scripts, rules, records and counts (wamids stay unique)."""
        self._scripts.clear()
        self.received.clear()
        if self.webhooks is not None:
            self.webhooks.reset()

    def summary(self) -> dict[str, Any]:
        """What `GET /_fake/requests` answers."""
        webhooks = None if self.webhooks is None else self.webhooks.counts()
        return {**self.received.summary(), "webhooks": webhooks}

    async def send_statuses(self, statuses: list[dict[str, Any]]) -> int:
        """Posts one signed envelope with `statuses` to the webhook URL now; the HTTP status."""
        if self.webhooks is None:
            raise RuntimeError("FakeMeta was built without a webhook_url")
        return await self.webhooks.post(statuses)

    # Serving ---------------------------------------------------------------------------------

    @property
    def needs_lifespan(self) -> bool:
        """Webhooks need their HTTP session and flusher, opened and closed with the server."""
        return self.webhooks is not None

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.webhooks is not None:
            await self.webhooks.start()
        try:
            yield
        finally:
            if self.webhooks is not None:
                await self.webhooks.close()

    def _serving(self) -> None:
        # A fresh event: asyncio binds one to the first loop that waits on it, and a fake may
        # be served again from another test's loop.
        self._released = asyncio.Event()

    def _release_waiters(self) -> None:
        """Ends delays and hangs now, so that the server can shut down (uvicorn waits for them)."""
        self._released.set()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    def _record(
        self, at: float, key: str, body: Any, auth: str | None, status: int, number: str = ""
    ) -> None:
        self.received.add(RecordedRequest(at, key, body, auth, status, None, number))

    def _accept(
        self, at: float, to: str, key: str, body: Any, auth: str | None, number: str = ""
    ) -> Response:
        wamid = f"{self._wamid_prefix}{next(self._wamid_seq)}"
        self.received.add(RecordedRequest(at, key, body, auth, 200, wamid, number))
        if self.auto_statuses and self.webhooks is not None:
            callback = body.get("biz_opaque_callback_data") if isinstance(body, dict) else None
            callback = callback if self.echo_callback_data else None
            self.webhooks.queue(wamid, key, number or None, callback)
        return Response(orjson.dumps(send_response(wamid, to)), media_type="application/json")

    async def _messages(self, request: Request) -> Response:
        """The send endpoint: the hot path, so no work beyond recording and a tiny answer."""
        at = time.monotonic()
        auth = request.headers.get("authorization")
        try:
            body: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        to = body.get("to") if isinstance(body, dict) else None
        key = to.lstrip("+") if isinstance(to, str) else ""
        sender = request.path_params["phone_number_id"]
        if self.numbers.by_id:
            allowed = self.numbers.authorizes(sender, auth)
        else:
            allowed = auth == self._authorization
        if not allowed:
            self._record(at, key, body, auth, 401, sender)
            return Response(self._unauthorized, 401, media_type="application/json")
        if not (valid_send(body) and self.phone_number_id in (None, sender)):
            self._record(at, key, body, auth, 400, sender)
            return Response(self._invalid, 400, media_type="application/json")
        assert isinstance(to, str)  # valid_send checked it
        step = self._scripts.next_for(key)
        if step is None and self.chaos is not None:
            step = self.chaos.next_step()
        if step is None or step.kind == "accept":
            return self._accept(at, to, key, body, auth, sender)
        if step.kind == "delay":
            # Meta took the message; only its answer is late (and may lose a client's timeout).
            response = self._accept(at, to, key, body, auth, sender)
            await self._wait(step.seconds)
            return response
        if step.kind == "drop":
            response = self._accept(at, to, key, body, auth, sender)
            transport = request.scope.get(TRANSPORT)
            if transport is not None:
                transport.abort()  # no answer at all: the client sees the connection drop
            return response
        if step.kind == "hang":
            self._record(at, key, body, auth, 0, sender)
            await self._wait(self.hang_s)
            return Response(b"", 504)
        self._record(at, key, body, auth, step.status, sender)
        return step.response()

    async def _control_script(self, request: Request) -> Response:
        try:
            data = orjson.loads(await request.body())
            steps = [step_from_json(item) for item in data["steps"]]
            if "to" in data:
                self.script(str(data["to"]), *steps)
            else:
                self.script_suffix(str(data["suffix"]), *steps, once=bool(data.get("once")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad script: {exc!r}"}, 400)
        return JSONResponse({"scripted": len(steps)})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})

    async def _control_requests(self, request: Request) -> Response:
        return Response(orjson.dumps(self.summary()), media_type="application/json")


@contextlib.asynccontextmanager
async def running_fake_meta(app: FakeMeta | ASGIApp, *, backlog: int = 2048) -> AsyncIterator[str]:
    """Serves a FakeMeta, or any ASGI app (a test's webhook receiver, say), on a free loopback
    port in the running loop; yields its base URL. `backlog` is the listen queue's length."""
    if not isinstance(app, FakeMeta):
        async with serving(app) as base_url:
            yield base_url
        return
    app._serving()
    lifespan: Literal["on", "off"] = "on" if app.needs_lifespan else "off"
    async with serving(
        app.app, lifespan=lifespan, on_shutdown=app._release_waiters, backlog=backlog
    ) as base_url:
        yield base_url


def main(argv: list[str] | None = None) -> None:
    """The fake as its own process, for benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--phone-number-id", default=None)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--app-secret", default=None)
    parser.add_argument("--auto-statuses", action="store_true")
    # Meta posts one status per request at the volumes most numbers see; 100: batched.
    parser.add_argument("--status-batch-size", type=int, default=1)
    parser.add_argument("--status-concurrency", type=int, default=16, help="POSTs in flight")
    parser.add_argument("--status-flush-interval-s", type=float, default=0.005)
    parser.add_argument(
        "--backlog", type=int, default=2048, help="the listen queue (small: a server that lags)"
    )
    parser.add_argument(
        "--chaos-seed", type=int, default=None, help="answer with Chaos's fault mix, seeded"
    )
    args = parser.parse_args(argv)
    fake = FakeMeta(
        token=args.token,
        phone_number_id=args.phone_number_id,
        webhook_url=args.webhook_url,
        app_secret=args.app_secret,
        auto_statuses=args.auto_statuses,
        status_batch_size=args.status_batch_size,
        status_flush_interval_s=args.status_flush_interval_s,
        status_concurrency=args.status_concurrency,
        chaos_seed=args.chaos_seed,
    )
    config = uvicorn.Config(
        fake.app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on" if fake.needs_lifespan else "off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        backlog=args.backlog,
    )
    Server(config, on_shutdown=fake._release_waiters).run()


if __name__ == "__main__":
    main()
