"""The sync and async clients offer the same operations, with the same parameters: the async
resources were written from the sync ones and must not drift."""

from __future__ import annotations

import inspect

import pytest
from wa_outbound_client import async_resources, resources

GROUPS = [
    "Messages",
    "Consents",
    "Contacts",
    "DeadLetterQueue",
    "Quotas",
    "Senders",
    "WebhookEndpoints",
]


def _operations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_has_the_same_operations_and_parameters(group: str) -> None:
    sync_ops = _operations(getattr(resources, group))
    async_ops = _operations(getattr(async_resources, group))
    assert sorted(sync_ops) == sorted(async_ops)
    for name, signature in sync_ops.items():
        assert list(signature.parameters.values()) == list(async_ops[name].parameters.values()), (
            name
        )
        function = getattr(getattr(async_resources, group), name)
        assert inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
