"""The service's error answers become typed exceptions carrying the status and the error
body's code, message and details."""

from __future__ import annotations

import uuid

import pytest
from wa_outbound_client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationError,
)

from client.service import Service
from client.test_client_messages import LATER, TEMPLATE


def test_unknown_message_is_not_found(sync_client: Client) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as raised:
        sync_client.messages.get(missing)
    assert (raised.value.status, raised.value.code) == (404, "not_found")
    assert raised.value.message
    assert isinstance(raised.value, ApiError)


def test_same_key_with_another_body_is_a_conflict(sync_client: Client) -> None:
    phone = "+33612000001"
    sync_client.consents.grant(phone)
    sync_client.messages.send(phone, template=TEMPLATE, send_after=LATER, idempotency_key="k-1")
    with pytest.raises(Conflict) as raised:
        sync_client.messages.send(
            phone, template=TEMPLATE, metadata={"other": "body"}, idempotency_key="k-1"
        )
    assert raised.value.status == 409
    assert raised.value.code == "idempotency_conflict"
    assert raised.value.details == {"idempotency_key": "k-1"}


async def test_no_consent_and_bad_values_are_validation_errors(
    async_client: AsyncClient,
) -> None:
    with pytest.raises(ValidationError) as raised:
        await async_client.messages.send("+33612000002", template=TEMPLATE)
    assert (raised.value.status, raised.value.code) == (422, "consent_required")
    assert raised.value.details == {"phone_suffix": "0002"}

    with pytest.raises(ValidationError) as invalid:
        await async_client.messages.send("not a number", template=TEMPLATE)
    assert invalid.value.code == "validation_error"
    assert invalid.value.details["errors"]


def test_a_naive_datetime_is_refused_before_sending(sync_client: Client) -> None:
    with pytest.raises(ValueError, match="zone"):
        sync_client.messages.send(
            "+33612000003", template=TEMPLATE, send_after=LATER.replace(tzinfo=None)
        )


def test_a_wrong_key_is_unauthorized_and_an_org_key_cannot_set_quota(
    service: Service, sync_client: Client
) -> None:
    with Client(service.base_url, "wao_wrong") as wrong, pytest.raises(Unauthorized) as raised:
        wrong.quota.get()
    assert raised.value.code == "unauthorized"
    # The quota's PUT takes the admin token: an organisation's key is not it.
    with pytest.raises((Unauthorized, Forbidden)):
        sync_client.quota.set(limit=10)
