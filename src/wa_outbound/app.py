"""The composition root: `create_app(settings)` wires everything; importing does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from wa_outbound import console
from wa_outbound.alerts import AlertEvaluator
from wa_outbound.api import (
    admin,
    alerts,
    consents,
    contacts,
    dlq,
    docs,
    errors,
    health,
    messages,
    openapi,
    ratelimits,
    senders,
    templates,
    webhook_endpoints,
    webhooks,
)
from wa_outbound.api import channel_health as channel_health_api
from wa_outbound.api import metrics as metrics_api
from wa_outbound.api.deps import State
from wa_outbound.api.limits import BodySizeLimit, storable_text
from wa_outbound.api.webhook_path import MetaWebhookPath
from wa_outbound.callbacks.worker import CallbackWorker
from wa_outbound.config import Settings
from wa_outbound.contacts.keywords import Keywords
from wa_outbound.crypto import Keyring, check_stored_secrets, warn_if_clear
from wa_outbound.db.engine import (
    create_engine,
    create_session_engine,
    warn_if_pooled_without_timeout,
)
from wa_outbound.db.listener import API_KEYS_CHANNEL, Listener
from wa_outbound.db.revision import SchemaWatch
from wa_outbound.dispatch.dispatcher import Dispatcher
from wa_outbound.lifecycle.keys import warn_if_public
from wa_outbound.lifecycle.worker import RetentionWorker
from wa_outbound.metrics import Metrics
from wa_outbound.monitoring.queue_gauges import QueueGauges
from wa_outbound.orgs.key_cache import ApiKeyCache
from wa_outbound.outbox.notifier import OutboxNotifier
from wa_outbound.ratelimit import create_rate_limiter
from wa_outbound.senders.directory import Directory
from wa_outbound.templates.sync import TemplateSync
from wa_outbound.webhooks.applier import WebhookIntake
from wa_outbound.webhooks.sweep import ReceiptSweep
from wa_outbound.whatsapp.providers import create_provider
from wa_outbound.workers import Supervisor

DESCRIPTION = """
Queue WhatsApp template and session messages; they are sent through Meta's Cloud API by the
service's dispatcher, and their statuses arrive through Meta's webhooks.

Authenticate with `Authorization: Bearer <api key>` (admin calls: the admin token). Every error
answers `{"error": {"code", "message", "details"}}`; each operation lists the codes it can answer.
The rules across calls (idempotency, statuses, the dead-letter queue, Meta's webhook) are in
`docs/api.md` of the service's repository.
"""


def create_app(settings: Settings) -> FastAPI:
    keyring = Keyring.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        engine = create_engine(settings)
        # LISTEN and the leaders' advisory locks hold sessions: straight to PostgreSQL when
        # WA_DATABASE_URL goes through a transaction pooler (the same engine otherwise).
        session_engine = create_session_engine(settings, engine)
        metrics = Metrics()
        supervisor = Supervisor()
        limiter = create_rate_limiter(settings, engine, metrics)
        provider, sandbox_statuses = create_provider(settings, engine)
        dispatcher = Dispatcher(
            settings=settings,
            engine=engine,
            provider=provider,
            metrics=metrics,
            limiter=limiter,
            senders=Directory(engine, settings, decrypt=keyring.decrypt),
            session_engine=session_engine,
        )
        callbacks = CallbackWorker(
            settings=settings,
            engine=engine,
            metrics=metrics,
            decrypt=keyring.decrypt,
            session_engine=session_engine,
        )
        notifier = OutboxNotifier(engine) if settings.is_postgres else None
        api_keys = ApiKeyCache(ttl_s=settings.api_key_cache_seconds)
        template_sync = TemplateSync(engine, settings, decrypt=keyring.decrypt)
        webhook_intake = (
            WebhookIntake(
                engine,
                metrics=metrics,
                keywords=Keywords.from_settings(settings),
                answer_after=settings.webhook_answer_after,
            )
            if settings.is_postgres
            else None
        )

        def wake_dispatcher() -> None:
            dispatcher.wake()
            if notifier is not None:
                notifier.poke()

        def start_dispatcher() -> None:
            # Never on a schema older than the code: every claim would fail and be retried
            # into the dead-letter queue. The schema watch calls this once it is usable.
            if settings.dispatch_enabled:
                supervisor.start("dispatcher", dispatcher)
            if settings.callback_enabled:
                supervisor.start("callback-worker", callbacks)

        schema = SchemaWatch(engine, on_usable=start_dispatcher)
        try:
            if notifier is not None:
                supervisor.start("outbox-notifier", notifier)
            if webhook_intake is not None:
                supervisor.start("webhook-store", webhook_intake.store)
                supervisor.start("webhook-applier", webhook_intake.applier)
            if settings.is_postgres:
                supervisor.start(
                    "api-key-listener",
                    Listener(session_engine, api_keys.clear, channel=API_KEYS_CHANNEL),
                )
            warn_if_clear(keyring)
            warn_if_public(settings)
            if (await schema.run_once()).usable:
                # A stored secret no key decrypts stops start-up here, naming its row.
                await check_stored_secrets(engine, keyring)
                # Webhooks to the shared number route to its row: have it before any arrive.
                await dispatcher.senders.ensure_shared()
                await warn_if_pooled_without_timeout(engine, settings)
            else:
                supervisor.start("schema-watch", schema)
            if sandbox_statuses is not None:
                supervisor.start("sandbox-statuses", sandbox_statuses)
            if settings.alert_enabled:
                # Evaluates on the leader replica only (PostgreSQL advisory lock), on the
                # leader's own connection.
                supervisor.start(
                    "alert-evaluator", AlertEvaluator(settings, session_engine, metrics)
                )
            supervisor.start(
                "receipt-sweep",
                ReceiptSweep(
                    engine,
                    metrics=metrics,
                    pending_max_age_s=settings.pending_status_max_age_seconds,
                    keywords=Keywords.from_settings(settings),
                ),
            )
            # Reads each WABA's templates from Meta now, then every WA_TEMPLATE_SYNC_SECONDS.
            supervisor.start("template-sync", template_sync)
            if settings.retention_days > 0:
                # Deletes on the replica holding the retention lock only (PostgreSQL).
                supervisor.start("retention", RetentionWorker(settings, session_engine, metrics))
            supervisor.start(
                "queue-gauges",
                QueueGauges(engine, metrics, interval_s=settings.metrics_refresh_seconds),
            )
            yield {
                "settings": settings,
                "engine": engine,
                "metrics": metrics,
                "supervisor": supervisor,
                "wake_dispatcher": wake_dispatcher,
                "limiter": limiter,
                "api_keys": api_keys,
                "schema": schema,
                "templates": template_sync,
                "webhook_intake": webhook_intake,
            }
        finally:
            # Reverse order: stop the loops, then close the clients they use, then the engine.
            await supervisor.stop_all(timeout_s=settings.shutdown_grace_seconds + 5)
            await provider.close()
            await limiter.close()
            if session_engine is not engine:
                await session_engine.dispose()
            await engine.dispose()

    app = FastAPI(
        title="wa-outbound",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own pages load their assets from a CDN; docs.install serves them from here.
        docs_url=None,
        redoc_url=None,
    )
    app.state.keyring = keyring
    errors.install(app)
    # Meta's webhook POST on PostgreSQL, answered inside BodySizeLimit: the middleware added last
    # is the outermost, so the body limit applies to it first.
    app.add_middleware(MetaWebhookPath)
    app.add_middleware(BodySizeLimit)
    # Every /v1 route refuses text the databases cannot store. Not Meta's webhook: what Meta
    # sends is stored whatever its text holds (docs/webhooks.md).
    text_check = [Depends(storable_text)]
    routers = (
        admin,
        messages,
        senders,
        webhook_endpoints,
        consents,
        templates,
        contacts,
        dlq,
        ratelimits,
        webhooks,
        alerts,
        health,
    )
    for module in (*routers, channel_health_api, metrics_api):
        checked = module.router.prefix.startswith("/v1/")
        app.include_router(module.router, dependencies=text_check if checked else None)
    docs.install(app)
    openapi.install(app)
    console.install(app)  # /console/: the operator console's pages (HTML, no /v1 route)
    return app
