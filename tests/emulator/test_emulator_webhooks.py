"""Webhook delivery: real POSTs to a receiver on a socket, signed, retried, recorded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.emulator import EMULATOR_STATE, EmulatorSettings, EmulatorState, create_emulator_app

from .emulator_helpers import (
    DRAFT_ID,
    SENT_ID,
    TEMPLATE_ID,
    Client,
    Receiver,
    fetch,
    wait_until,
)

SUBSCRIPTIONS = "/public/v1/webhook-subscriptions"


@pytest.fixture
def settings() -> EmulatorSettings:
    return EmulatorSettings(document_processing_s=0.0, webhook_retry_delay_s=0.01)


async def subscribe(
    client: Client, auth: dict[str, str], url: str, *triggers: str, **fields: Any
) -> dict[str, Any]:
    request = {"name": "CI", "url": url, "triggers": list(triggers) or ["document_state_changed"]}
    status, body, _ = await fetch(
        client, "POST", SUBSCRIPTIONS, json={**request, **fields}, headers=auth
    )
    assert status == 201, body
    return dict(body)


def complete(state: EmulatorState, doc_id: str = SENT_ID) -> None:
    doc = state.documents.get(doc_id)
    assert doc is not None
    state.documents.complete(doc)


def settled(state: EmulatorState) -> bool:
    events = state.webhooks.events.values()
    return bool(events) and not any(event.pending for event in events)


async def test_a_document_event_is_posted_signed_with_the_shared_key(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    subscription = await subscribe(client, auth, receiver.url)
    complete(state)
    await wait_until(lambda: len(receiver.deliveries) == 1)
    [delivery] = receiver.verified(subscription["shared_key"])
    [event] = json.loads(delivery.body)
    assert event["event"] == "document_state_changed"
    assert (event["data"]["id"], event["data"]["status"]) == (SENT_ID, "document.completed")
    assert delivery.query["tenant"] == "7"  # the URL's own query is kept
    assert delivery.event_id == next(iter(state.webhooks.events))


async def test_a_signature_made_with_another_key_does_not_verify(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url)
    complete(state)
    await wait_until(lambda: len(receiver.deliveries) == 1)
    assert receiver.verified("not-the-shared-key") == []


async def test_a_failed_delivery_is_retried_with_the_same_event_id_body_and_signature(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    subscription = await subscribe(client, auth, receiver.url)
    receiver.answers = [500]
    complete(state)
    await wait_until(lambda: settled(state))
    first, retry = receiver.verified(subscription["shared_key"])
    assert first.event_id == retry.event_id
    assert (first.body, first.signature) == (retry.body, retry.signature)
    [event] = state.webhooks.events.values()
    assert [a.http_status_code for a in event.attempts] == [500, 200]
    assert event.delivered


async def test_a_delivery_that_keeps_failing_is_recorded_with_its_outcome(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url)
    receiver.answers = [503, 503, 503]
    complete(state)
    await wait_until(lambda: settled(state))
    assert len(receiver.deliveries) == state.settings.webhook_attempts == 3
    params = {"count": "10", "page": "0", "http_status_code": "500"}
    _, listed, _ = await fetch(
        client, "GET", "/public/v1/webhook-events", params=params, headers=auth
    )
    [item] = listed["items"]
    assert item["http_status_code"] == 503
    _, details, _ = await fetch(
        client, "GET", f"/public/v1/webhook-events/{item['uuid']}", headers=auth
    )
    assert json.loads(details["response_body"]) == {"received": True}
    assert "content-type" in details["response_headers"]


async def test_an_unreachable_receiver_is_recorded_as_a_connect_error(
    client: Client, state: EmulatorState, auth: dict[str, str], unused_tcp_port: int
) -> None:
    await subscribe(client, auth, f"http://127.0.0.1:{unused_tcp_port}/hook")
    complete(state)
    await wait_until(lambda: settled(state))
    [event] = state.webhooks.events.values()
    assert [a.error for a in event.attempts] == ["CONNECT_ERROR"] * 3
    assert event.details_view()["error"] == "CONNECT_ERROR"


async def test_a_receiver_slower_than_the_timeout_is_recorded_as_a_timeout_error(
    client: Client,
    state: EmulatorState,
    auth: dict[str, str],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    answered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await answered.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app)
    state.settings.webhook_timeout_s = 0.05
    state.settings.webhook_attempts = 1
    await subscribe(client, auth, str(server.make_url("/hook")))
    complete(state)
    await wait_until(lambda: settled(state))
    answered.set()
    [event] = state.webhooks.events.values()
    assert (event.error, event.http_status_code) == ("TIMEOUT_ERROR", None)


async def test_a_410_deactivates_the_subscription_at_once(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    subscription = await subscribe(client, auth, receiver.url)
    receiver.answers = [410]
    complete(state)
    await wait_until(lambda: settled(state))
    assert len(receiver.deliveries) == 1
    path = f"{SUBSCRIPTIONS}/{subscription['uuid']}"
    _, details, _ = await fetch(client, "GET", path, headers=auth)
    assert (details["status"], details["active"]) == ("DEACTIVATED", False)
    await fetch(client, "DELETE", f"/public/v1/documents/{DRAFT_ID}", headers=auth)
    assert len(state.webhooks.events) == 1


async def test_an_inactive_subscription_gets_no_events(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url, active=False)
    complete(state)
    assert state.webhooks.events == {}


async def test_recipient_completed_names_who_completed_and_when(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url, "recipient_completed")
    complete(state)
    await wait_until(lambda: len(receiver.deliveries) == 1)
    [event] = json.loads(receiver.deliveries[0].body)
    assert event["event"] == "recipient_completed"
    assert event["data"]["action_by"]["email"] == "jane@example.com"
    assert event["data"]["action_date"].endswith("Z")


async def test_deleting_a_document_sends_document_deleted(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url, "document_deleted")
    await fetch(client, "DELETE", f"/public/v1/documents/{DRAFT_ID}", headers=auth)
    await wait_until(lambda: len(receiver.deliveries) == 1)
    [event] = json.loads(receiver.deliveries[0].body)
    assert (event["event"], event["data"]["id"]) == ("document_deleted", DRAFT_ID)


async def test_the_end_of_processing_is_announced_without_anyone_polling(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    state.settings.document_processing_s = 0.05
    await subscribe(client, auth, receiver.url)
    request = {"template_uuid": TEMPLATE_ID, "recipients": [{"email": "bob@example.com"}]}
    _, created, _ = await fetch(client, "POST", "/public/v1/documents", json=request, headers=auth)
    await wait_until(lambda: len(receiver.deliveries) == 1)
    [event] = json.loads(receiver.deliveries[0].body)
    assert (event["data"]["id"], event["data"]["status"]) == (created["id"], "document.draft")


async def test_payload_options_add_what_the_subscription_asked_for(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url, payload=["metadata", "tokens"])
    await subscribe(client, auth, receiver.url)
    complete(state)
    await wait_until(lambda: len(receiver.deliveries) == 2)
    datas = sorted((json.loads(d.body)[0]["data"] for d in receiver.deliveries), key=len)
    assert not {"metadata", "tokens"} & set(datas[0])
    assert {"metadata", "tokens", "recipients"} <= set(datas[1])


async def test_the_control_api_retries_an_event_and_waits_for_deliveries(
    client: Client, state: EmulatorState, auth: dict[str, str], receiver: Receiver
) -> None:
    await subscribe(client, auth, receiver.url)
    complete(state)
    assert (await fetch(client, "POST", "/_emulator/webhooks/wait"))[0] == 200
    [event_id] = state.webhooks.events
    status, _, _ = await fetch(client, "POST", f"/_emulator/webhook-events/{event_id}/retry")
    assert status == 202
    assert (await fetch(client, "POST", "/_emulator/webhooks/wait"))[0] == 200
    assert [d.event_id for d in receiver.deliveries] == [event_id, event_id]
    _, listed, _ = await fetch(client, "GET", "/_emulator/webhook-events")
    assert len(listed["events"][0]["attempts"]) == 2


async def test_deliveries_in_flight_are_cancelled_when_the_emulator_shuts_down(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await never.wait()
        return web.Response()

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hang)
    hook = await aiohttp_server(hook_app)
    emulator_app = create_emulator_app(EmulatorSettings(webhook_timeout_s=60))
    emulator = await aiohttp_server(emulator_app)
    state = emulator_app[EMULATOR_STATE]
    state.webhooks.subscribe("CI", str(hook.make_url("/hook")), ["document_deleted"], [], True)
    doc = state.documents.get(DRAFT_ID)
    assert doc is not None
    state.documents.delete(doc)
    await asyncio.wait_for(arrived.wait(), 10)
    started = time.monotonic()
    await emulator.close()
    assert time.monotonic() - started < 5
    [event] = state.webhooks.events.values()
    assert not event.pending
    assert state.webhooks.deliver is None


async def test_events_created_while_the_app_is_not_running_stay_pending() -> None:
    state = EmulatorState()
    state.webhooks.subscribe("CI", "http://127.0.0.1:9/hook", ["document_deleted"], [], True)
    doc = state.documents.get(DRAFT_ID)
    assert doc is not None
    state.documents.delete(doc)
    [event] = state.webhooks.events.values()
    assert (event.pending, event.attempts) == (True, [])
