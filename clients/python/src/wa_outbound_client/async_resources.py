"""The asynchronous client's groups of operations: `client.messages`, `client.consents`,
`client.contacts`, `client.dlq`, `client.quota`, `client.senders`, `client.webhook_endpoints`."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from wa_outbound_client import _calls
from wa_outbound_client._calls import UNSET, Unset
from wa_outbound_client.models import (
    BatchResult,
    Consent,
    ConsentStatus,
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryPage,
    DeliveryStatus,
    DlqReport,
    Erasure,
    Interactive,
    Media,
    Message,
    MessageCreate,
    MessageEvent,
    MessagePage,
    MessageStatus,
    Quota,
    Sender,
    Template,
    Text,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from wa_outbound_client.async_client import AsyncClient

Id = str | uuid.UUID


class _Resource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class Messages(_Resource):
    async def send(
        self,
        to: str,
        *,
        template: Template | None = None,
        text: str | Text | None = None,
        media: Media | None = None,
        interactive: Interactive | None = None,
        reply_to: str | None = None,
        metadata: Mapping[str, str] | None = None,
        send_after: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        sender: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Queues one message: a `template`, or a session message (`text`, `media` or
        `interactive`), optionally in reply to an inbound one. Every attempt carries the same
        Idempotency-Key (a fresh UUID unless given), so it is queued at most once; a retry
        that reaches the service after a lost answer returns the message first queued.
        `sender` is the API's `from`: a sender's id or display number."""
        call = _calls.send_message(
            to,
            template=template,
            text=text,
            media=media,
            interactive=interactive,
            reply_to=reply_to,
            metadata=metadata,
            send_after=send_after,
            expires_at=expires_at,
            sender=sender,
            idempotency_key=idempotency_key,
        )
        return cast(Message, await self._client.json(call))

    async def batch(self, messages: Sequence[MessageCreate]) -> builtins.list[BatchResult]:
        """Queues up to 1,000 messages; one result per item, in order: check each `error`.
        Items without an `idempotency_key` are given one, so a retry queues none twice."""
        return cast(
            list[BatchResult], (await self._client.json(_calls.send_batch(messages)))["results"]
        )

    async def get(self, message_id: Id) -> Message:
        return cast(Message, await self._client.json(_calls.get_message(message_id)))

    async def list_page(
        self,
        *,
        status: MessageStatus | None = None,
        to: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MessagePage:
        """One page, newest first; pass its `next_cursor` back as `cursor` for the next."""
        call = _calls.list_messages(status=status, to=to, limit=limit, cursor=cursor)
        return cast(MessagePage, await self._client.json(call))

    async def list(
        self, *, status: MessageStatus | None = None, to: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Message]:
        """Every matching message, newest first, fetching pages of `page_size` as it goes."""
        cursor: str | None = None
        while True:
            page = await self.list_page(status=status, to=to, limit=page_size, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def events(self, message_id: Id) -> builtins.list[MessageEvent]:
        """The message's timeline, oldest first."""
        body = await self._client.json(_calls.message_events(message_id))
        return cast(list[MessageEvent], body["items"])

    async def cancel(self, message_id: Id) -> Message:
        """`Conflict` with code `not_cancellable` once it is being sent or sent."""
        return cast(Message, await self._client.json(_calls.cancel_message(message_id)))


class Consents(_Resource):
    async def set(self, phone: str, status: ConsentStatus, *, source: str | None = None) -> Consent:
        call = _calls.put_consent(phone, status=status, source=source)
        return cast(Consent, await self._client.json(call))

    async def grant(self, phone: str, *, source: str | None = None) -> Consent:
        return await self.set(phone, "granted", source=source)

    async def revoke(self, phone: str, *, source: str | None = None) -> Consent:
        return await self.set(phone, "revoked", source=source)

    async def get(self, phone: str) -> Consent:
        return cast(Consent, await self._client.json(_calls.get_consent(phone)))


class Contacts(_Resource):
    async def erase(self, phone: str) -> Erasure:
        """Erases what the organisation keeps about the number (its consent, and the number
        and content of its messages, redacted); `DELETE /v1/contacts/{phone}`."""
        return cast(Erasure, await self._client.json(_calls.erase_contact(phone)))


class DeadLetterQueue(_Resource):
    async def list_page(
        self, *, error_code: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> MessagePage:
        call = _calls.list_dead_letters(error_code=error_code, limit=limit, cursor=cursor)
        return cast(MessagePage, await self._client.json(call))

    async def list(
        self, *, error_code: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Message]:
        cursor: str | None = None
        while True:
            page = await self.list_page(error_code=error_code, limit=page_size, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def report(self) -> DlqReport:
        return cast(DlqReport, await self._client.json(_calls.dlq_report()))

    async def replay(self, message_id: Id) -> Message:
        return cast(Message, await self._client.json(_calls.replay_one(message_id)))

    async def replay_many(
        self, *, ids: Sequence[Id] | None = None, error_code: str | None = None
    ) -> int:
        """Replays up to 10,000 messages per call; returns how many."""
        call = _calls.replay_many(ids=ids, error_code=error_code)
        return int((await self._client.json(call))["replayed"])

    async def discard(self, message_id: Id) -> None:
        await self._client.request(_calls.discard(message_id))


class Quotas(_Resource):
    async def get(self) -> Quota:
        return cast(Quota, await self._client.json(_calls.get_quota()))

    async def set(
        self,
        *,
        limit: int | None = None,
        window_seconds: int | None = None,
        messages_per_second: float | None = None,
    ) -> Quota:
        """Admin token, with the client's `org_id`; fields left out keep their value."""
        call = _calls.set_quota(
            limit=limit, window_seconds=window_seconds, messages_per_second=messages_per_second
        )
        return cast(Quota, await self._client.json(call))


class Senders(_Resource):
    async def create(
        self,
        *,
        phone_number_id: str,
        waba_id: str,
        access_token: str,
        name: str | None = None,
        messages_per_second: float | None = None,
        default: bool | None = None,
    ) -> Sender:
        call = _calls.create_sender(
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            access_token=access_token,
            name=name,
            messages_per_second=messages_per_second,
            default=default,
        )
        return cast(Sender, await self._client.json(call))

    async def list(self) -> builtins.list[Sender]:
        return cast(list[Sender], (await self._client.json(_calls.list_senders()))["items"])

    async def get(self, sender_id: Id) -> Sender:
        return cast(Sender, await self._client.json(_calls.get_sender(sender_id)))

    async def update(
        self,
        sender_id: Id,
        *,
        access_token: str | Unset = UNSET,
        name: str | Unset | None = UNSET,
        messages_per_second: float | Unset = UNSET,
        default: bool | Unset = UNSET,
        paused: bool | Unset = UNSET,
        messaging_limit: str | Unset | None = UNSET,
    ) -> Sender:
        """Changes only the fields given; `name=None` clears the name."""
        fields: dict[str, Any] = {
            "access_token": access_token,
            "name": name,
            "messages_per_second": messages_per_second,
            "default": default,
            "paused": paused,
            "messaging_limit": messaging_limit,
        }
        return cast(Sender, await self._client.json(_calls.update_sender(sender_id, fields)))

    async def delete(self, sender_id: Id, *, cancel_waiting: bool = False) -> None:
        await self._client.request(_calls.delete_sender(sender_id, cancel_waiting=cancel_waiting))


class WebhookEndpoints(_Resource):
    async def create(
        self, url: str, *, events: Sequence[str] | None = None, description: str | None = None
    ) -> CreatedWebhookEndpoint:
        """The endpoint with its `secret`, shown only here and at rotation: keep it."""
        call = _calls.create_endpoint(url, events=events, description=description)
        return cast(CreatedWebhookEndpoint, await self._client.json(call))

    async def list(self) -> builtins.list[WebhookEndpoint]:
        return cast(
            list[WebhookEndpoint], (await self._client.json(_calls.list_endpoints()))["items"]
        )

    async def get(self, endpoint_id: Id) -> WebhookEndpoint:
        return cast(WebhookEndpoint, await self._client.json(_calls.get_endpoint(endpoint_id)))

    async def update(
        self,
        endpoint_id: Id,
        *,
        url: str | Unset = UNSET,
        events: Sequence[str] | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        enabled: bool | Unset = UNSET,
    ) -> WebhookEndpoint:
        """Changes only the fields given; `events=None` subscribes to every type,
        `description=None` clears it."""
        fields: dict[str, Any] = {
            "url": url,
            "events": list(events) if isinstance(events, Sequence) else events,
            "description": description,
            "enabled": enabled,
        }
        call = _calls.update_endpoint(endpoint_id, fields)
        return cast(WebhookEndpoint, await self._client.json(call))

    async def delete(self, endpoint_id: Id) -> None:
        await self._client.request(_calls.delete_endpoint(endpoint_id))

    async def rotate_secret(self, endpoint_id: Id) -> str:
        """The new secret; the previous one keeps signing for 24 hours."""
        return str((await self._client.json(_calls.rotate_secret(endpoint_id)))["secret"])

    async def deliveries_page(
        self,
        endpoint_id: Id,
        *,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        call = _calls.list_deliveries(endpoint_id, status=status, limit=limit, cursor=cursor)
        return cast(DeliveryPage, await self._client.json(call))

    async def deliveries(
        self, endpoint_id: Id, *, status: DeliveryStatus | None = None, page_size: int = 50
    ) -> AsyncIterator[Delivery]:
        """Every delivery of the endpoint, newest first, page by page."""
        cursor: str | None = None
        while True:
            page = await self.deliveries_page(
                endpoint_id, status=status, limit=page_size, cursor=cursor
            )
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def retry_delivery(self, endpoint_id: Id, delivery_id: Id) -> Delivery:
        call = _calls.retry_delivery(endpoint_id, delivery_id)
        return cast(Delivery, await self._client.json(call))

    async def recover(self, endpoint_id: Id, *, since: datetime | str) -> int:
        """Makes the endpoint's failed deliveries since `since` pending again; how many."""
        return int((await self._client.json(_calls.recover(endpoint_id, since=since)))["requeued"])
