"""Webhook subscriptions and webhook events through PandaDoc's official Python SDK, one
test per operation; every answer fills every field of its SDK model."""

from __future__ import annotations

import pytest
from pandadoc_client.api.webhook_events_api import WebhookEventsApi
from pandadoc_client.api.webhook_subscriptions_api import WebhookSubscriptionsApi
from pandadoc_client.exceptions import NotFoundException
from pandadoc_client.model.webhook_subscription_create_request import (
    WebhookSubscriptionCreateRequest,
)
from pandadoc_client.model.webhook_subscription_patch_request import (
    WebhookSubscriptionPatchRequest,
)
from pandadoc_client.model.webhook_subscription_payload_enum import (
    WebhookSubscriptionPayloadEnum,
)
from pandadoc_client.model.webhook_subscription_trigger_enum import (
    WebhookSubscriptionTriggerEnum,
)

from proxy.emulator import EmulatorState

from .emulator_helpers import SENT_ID, Receiver, Sdk, assert_complete, wait_until


async def subscribe(sdk: Sdk, url: str, *triggers: str) -> str:
    request = WebhookSubscriptionCreateRequest(
        name="CI hook",
        url=url,
        triggers=[WebhookSubscriptionTriggerEnum(t) for t in triggers],
        payload=[WebhookSubscriptionPayloadEnum("metadata")],
    )
    created = await sdk(WebhookSubscriptionsApi, "create_webhook_subscription", request)
    return str(created.uuid)


async def delivered_event(sdk: Sdk, state: EmulatorState, receiver: Receiver) -> str:
    """Subscribe the receiver, complete the sent seeded document, wait for the delivery."""
    await subscribe(sdk, receiver.url, "document_state_changed")
    doc = state.documents.get(SENT_ID)
    assert doc is not None
    state.documents.complete(doc)
    await wait_until(lambda: any(e.delivered for e in state.webhooks.events.values()))
    return next(iter(state.webhooks.events))


async def test_create_webhook_subscription(sdk: Sdk, receiver: Receiver) -> None:
    request = WebhookSubscriptionCreateRequest(
        name="CI hook",
        url=receiver.url,
        triggers=[WebhookSubscriptionTriggerEnum("document_state_changed")],
    )
    created = await sdk(WebhookSubscriptionsApi, "create_webhook_subscription", request)
    assert (created.active, created.status.value) == (True, "ACTIVE")
    assert len(created.shared_key) == 32
    assert_complete(created)


async def test_list_webhook_subscriptions(sdk: Sdk, receiver: Receiver) -> None:
    uuid = await subscribe(sdk, receiver.url, "document_deleted")
    answer = await sdk(WebhookSubscriptionsApi, "list_webhook_subscriptions")
    assert [item.uuid for item in answer.items] == [uuid]
    assert_complete(answer)


async def test_details_webhook_subscription(sdk: Sdk, receiver: Receiver) -> None:
    uuid = await subscribe(sdk, receiver.url, "recipient_completed")
    answer = await sdk(WebhookSubscriptionsApi, "details_webhook_subscription", uuid)
    assert [trigger.value for trigger in answer.triggers] == ["recipient_completed"]
    assert_complete(answer)


async def test_update_webhook_subscription(sdk: Sdk, receiver: Receiver) -> None:
    uuid = await subscribe(sdk, receiver.url, "document_state_changed")
    request = WebhookSubscriptionPatchRequest(name="Renamed", active=False)
    answer = await sdk(WebhookSubscriptionsApi, "update_webhook_subscription", uuid, request)
    assert (answer.name, answer.active, answer.status.value) == ("Renamed", False, "INACTIVE")
    assert_complete(answer)


async def test_delete_webhook_subscription(sdk: Sdk, receiver: Receiver) -> None:
    uuid = await subscribe(sdk, receiver.url, "document_state_changed")
    await sdk(WebhookSubscriptionsApi, "delete_webhook_subscription", uuid)
    with pytest.raises(NotFoundException):
        await sdk(WebhookSubscriptionsApi, "details_webhook_subscription", uuid)


async def test_update_webhook_subscription_shared_key(sdk: Sdk, receiver: Receiver) -> None:
    uuid = await subscribe(sdk, receiver.url, "document_state_changed")
    before = await sdk(WebhookSubscriptionsApi, "details_webhook_subscription", uuid)
    answer = await sdk(WebhookSubscriptionsApi, "update_webhook_subscription_shared_key", uuid)
    assert answer.shared_key != before.shared_key
    after = await sdk(WebhookSubscriptionsApi, "details_webhook_subscription", uuid)
    assert after.shared_key == answer.shared_key
    assert_complete(answer)


async def test_list_webhook_event(sdk: Sdk, state: EmulatorState, receiver: Receiver) -> None:
    event_id = await delivered_event(sdk, state, receiver)
    answer = await sdk(WebhookEventsApi, "list_webhook_event", count=10, page=0)
    assert [(item.uuid, item.http_status_code) for item in answer.items] == [(event_id, 200)]
    assert_complete(answer)


async def test_details_webhook_event(sdk: Sdk, state: EmulatorState, receiver: Receiver) -> None:
    event_id = await delivered_event(sdk, state, receiver)
    answer = await sdk(WebhookEventsApi, "details_webhook_event", event_id)
    assert answer.type.value == "document_state_changed"
    assert answer.request_body.encode() == receiver.deliveries[0].body
    assert answer.signature == receiver.deliveries[0].signature
    assert_complete(answer)
