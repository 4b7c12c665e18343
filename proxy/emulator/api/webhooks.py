"""``/public/v1/webhook-subscriptions`` and ``/public/v1/webhook-events``.

Subscriptions hold the URL events are POSTed to and the shared key that signs them;
events are the delivery history (``webhook_delivery`` sends them).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from ..errors import not_found
from ..model.webhooks import ERRORS, PAYLOAD_OPTIONS, TRIGGERS, Subscription
from ..validation import Invalid, query_int
from .common import json_fields, no_content, state
from .operations import Operation

__all__ = ["OPERATIONS"]


def _subscription(request: web.Request) -> Subscription:
    subscription = state(request).webhooks.subscriptions.get(request.match_info["id"])
    if subscription is None:
        raise not_found()
    return subscription


async def list_webhook_subscriptions(request: web.Request) -> web.Response:
    """``GET /public/v1/webhook-subscriptions``: every subscription of the workspace."""
    subscriptions = state(request).webhooks.subscriptions.values()
    return web.json_response({"items": [s.view() for s in subscriptions]})


async def create_webhook_subscription(request: web.Request) -> web.Response:
    """``POST /public/v1/webhook-subscriptions``: name, url, triggers (201, with its key)."""
    fields = await json_fields(request)
    name = fields.string("name", required=True, blank=False)
    url = fields.url("url", required=True)
    triggers = fields.choices("triggers", TRIGGERS, required=True)
    payload = fields.choices("payload", PAYLOAD_OPTIONS) or []
    active = fields.boolean("active")
    fields.done()
    subscription = state(request).webhooks.subscribe(
        name or "", url or "", triggers or [], payload, True if active is None else active
    )
    return web.json_response(subscription.view(), status=201)


async def details_webhook_subscription(request: web.Request) -> web.Response:
    """``GET /public/v1/webhook-subscriptions/{id}``: one subscription."""
    return web.json_response(_subscription(request).view())


async def update_webhook_subscription(request: web.Request) -> web.Response:
    """``PATCH /public/v1/webhook-subscriptions/{id}``: change what the body names."""
    subscription = _subscription(request)
    fields = await json_fields(request)
    name = fields.string("name", blank=False)
    url = fields.url("url")
    active = fields.boolean("active")
    triggers = fields.choices("triggers", TRIGGERS)
    payload = fields.choices("payload", PAYLOAD_OPTIONS)
    fields.done()
    subscription.name = name if name is not None else subscription.name
    subscription.url = url if url is not None else subscription.url
    if active is not None:
        subscription.active = active
        subscription.deactivated = subscription.deactivated and not active
    subscription.triggers = triggers if triggers is not None else subscription.triggers
    subscription.payload = payload if payload is not None else subscription.payload
    return web.json_response(subscription.view())


async def delete_webhook_subscription(request: web.Request) -> web.Response:
    """``DELETE /public/v1/webhook-subscriptions/{id}``: 204; its events stay listed."""
    state(request).webhooks.unsubscribe(_subscription(request).uuid)
    return no_content()


async def update_webhook_subscription_shared_key(request: web.Request) -> web.Response:
    """``PATCH /public/v1/webhook-subscriptions/{id}/shared-key``: a new shared key."""
    return web.json_response({"shared_key": _subscription(request).regenerate_key()})


def _moments(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid({name: ["Datetime has wrong format. Use ISO 8601."]}) from None


def _listed(request: web.Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    values = request.query.getall(name, [])
    wrong = [value for value in values if value not in allowed]
    if wrong:
        raise Invalid({name: [f'"{value}" is not a valid choice.' for value in wrong]})
    return values


async def list_webhook_event(request: web.Request) -> web.Response:
    """``GET /public/v1/webhook-events?count=N&page=P``: the delivery history, newest first
    (pages count from 0; both are required); filters since, to, type, http_status_code,
    error."""
    query = request.query
    missing: dict[str, object] = {
        name: ["This field is required."] for name in ("count", "page") if name not in query
    }
    if missing:
        raise Invalid(missing)
    count = query_int(query, "count", 0, 0, 1000)
    page = query_int(query, "page", 0, 0, 1_000_000)
    groups = _listed(request, "http_status_code", ("100", "200", "300", "400", "500"))
    found = state(request).webhooks.search(
        since=_moments(request, "since"),
        to=_moments(request, "to"),
        types=_listed(request, "type", TRIGGERS),
        status_groups=[int(group) for group in groups],
        errors=_listed(request, "error", ERRORS),
    )
    window = found[page * count : (page + 1) * count]
    return web.json_response({"items": [event.item_view() for event in window]})


async def details_webhook_event(request: web.Request) -> web.Response:
    """``GET /public/v1/webhook-events/{id}``: one delivery, with bodies and signature."""
    event = state(request).webhooks.events.get(request.match_info["id"])
    if event is None:
        raise not_found()
    return web.json_response(event.details_view())


_SUBSCRIPTIONS = "/public/v1/webhook-subscriptions"
_EVENTS = "/public/v1/webhook-events"

OPERATIONS = [
    Operation("listWebhookSubscriptions", "GET", _SUBSCRIPTIONS, list_webhook_subscriptions),
    Operation("createWebhookSubscription", "POST", _SUBSCRIPTIONS, create_webhook_subscription),
    Operation(
        "detailsWebhookSubscription",
        "GET",
        _SUBSCRIPTIONS + "/{id}",
        details_webhook_subscription,
    ),
    Operation(
        "updateWebhookSubscription", "PATCH", _SUBSCRIPTIONS + "/{id}", update_webhook_subscription
    ),
    Operation(
        "deleteWebhookSubscription", "DELETE", _SUBSCRIPTIONS + "/{id}", delete_webhook_subscription
    ),
    Operation(
        "updateWebhookSubscriptionSharedKey",
        "PATCH",
        _SUBSCRIPTIONS + "/{id}/shared-key",
        update_webhook_subscription_shared_key,
    ),
    Operation("listWebhookEvent", "GET", _EVENTS, list_webhook_event),
    Operation("detailsWebhookEvent", "GET", _EVENTS + "/{id}", details_webhook_event),
]
