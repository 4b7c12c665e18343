"""Webhook subscriptions and the events sent to them (their delivery history).

An event is created when something a subscription listens to happens (a document changes
state, a recipient completes, a document is deleted): one event per subscription, with
its body, signature and id fixed at that moment, so every retry of its delivery sends
the same bytes, the same ``?signature=`` and the same ``X-PandaDoc-Webhook-Event-Id``.
The delivery itself (``webhook_delivery``) fills in the outcome: the receiver's status,
body and headers, or the error, and the time of the last attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .common import WORKSPACE_ID, new_uuid, now, timestamp

__all__ = [
    "ERRORS",
    "PAYLOAD_OPTIONS",
    "TRIGGERS",
    "Attempt",
    "Subscription",
    "WebhookEvent",
    "WebhookHub",
    "sign",
]

#: WebhookSubscriptionTriggerEnum. The emulator sends the document events among them.
TRIGGERS = (
    "recipient_completed",
    "document_updated",
    "document_deleted",
    "document_state_changed",
    "document_creation_failed",
    "quote_updated",
    "template_created",
    "template_modified",
)
#: WebhookSubscriptionPayloadEnum: what a document event carries besides the basics.
PAYLOAD_OPTIONS = ("metadata", "fields", "products", "tokens", "pricing")
#: WebhookEventErrorEnum: why a delivery failed without an HTTP answer.
ERRORS = ("INTERNAL_ERROR", "NOT_VALID_URL", "CONNECT_ERROR", "TIMEOUT_ERROR")


def sign(shared_key: str, body: bytes) -> str:
    """PandaDoc's signature: hex HMAC-SHA256 of the raw body, keyed with the shared key."""
    return hmac.new(shared_key.encode(), body, hashlib.sha256).hexdigest()


def _new_shared_key() -> str:
    return secrets.token_hex(16)


@dataclass
class Subscription:
    uuid: str
    name: str
    url: str
    triggers: list[str]
    payload: list[str]
    active: bool = True
    shared_key: str = field(default_factory=_new_shared_key)
    deactivated: bool = False  # by the receiver answering 410, as PandaDoc does

    @property
    def status(self) -> str:
        if self.deactivated:
            return "DEACTIVATED"
        return "ACTIVE" if self.active else "INACTIVE"

    def view(self) -> dict[str, object]:
        """WebhookSubscriptionItemResponse."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "url": self.url,
            "active": self.active,
            "payload": list(self.payload),
            "triggers": list(self.triggers),
            "workspace_id": WORKSPACE_ID,
            "shared_key": self.shared_key,
            "status": self.status,
        }

    def regenerate_key(self) -> str:
        self.shared_key = _new_shared_key()
        return self.shared_key


@dataclass
class Attempt:
    """One delivery attempt, for the control API (PandaDoc keeps only the last outcome)."""

    at: datetime
    http_status_code: int | None
    error: str | None


@dataclass
class WebhookEvent:
    uuid: str
    subscription: Subscription
    url: str
    type: str
    body: bytes
    signature: str
    event_time: datetime
    delivery_time: datetime | None = None
    http_status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    response_headers: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    pending: bool = True

    @property
    def delivered(self) -> bool:
        code = self.http_status_code
        return code is not None and 200 <= code < 300

    def item_view(self) -> dict[str, object]:
        """WebhookEventItemResponse.

        ``error`` is left out when there is none: PandaDoc's spec makes it nullable, but
        the official SDKs (generated from an older spec) refuse a null there.
        """
        view: dict[str, object] = {
            "uuid": self.uuid,
            "name": self.subscription.name,
            "type": self.type,
            "http_status_code": self.http_status_code,
            "delivery_time": timestamp(self.delivery_time or self.event_time),
        }
        if self.error is not None:
            view["error"] = self.error
        return view

    def details_view(self) -> dict[str, object]:
        """WebhookEventDetailsResponse."""
        return {
            **self.item_view(),
            "url": self.url,
            "signature": self.signature,
            "request_body": self.body.decode(),
            "response_body": self.response_body,
            "response_headers": self.response_headers,
            "event_time": timestamp(self.event_time),
        }

    def control_view(self) -> dict[str, object]:
        """The details plus every attempt, for ``GET /_emulator/webhook-events``."""
        return {
            **self.details_view(),
            "subscription_uuid": self.subscription.uuid,
            "pending": self.pending,
            "delivered": self.delivered,
            "attempts": [
                {"at": timestamp(a.at), "http_status_code": a.http_status_code, "error": a.error}
                for a in self.attempts
            ],
        }


def _group(event: WebhookEvent) -> int:
    """The hundred an event's status belongs to (WebhookEventHttpStatusCodeGroupEnum)."""
    return (event.http_status_code or 0) // 100 * 100


class WebhookHub:
    """Subscriptions, and events for them, handed to ``deliver`` once created.

    ``deliver`` is set by the app while it runs (the delivery tasks need its event loop);
    events created while it is unset stay pending.
    """

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.events: dict[str, WebhookEvent] = {}
        self.deliver: Callable[[WebhookEvent], None] | None = None

    def subscribe(
        self, name: str, url: str, triggers: list[str], payload: list[str], active: bool
    ) -> Subscription:
        subscription = Subscription(new_uuid(), name, url, triggers, payload, active)
        self.subscriptions[subscription.uuid] = subscription
        return subscription

    def unsubscribe(self, uuid: str) -> bool:
        return self.subscriptions.pop(uuid, None) is not None

    def emit(self, trigger: str, data: Callable[[Subscription], dict[str, object]]) -> None:
        """Create an event for every active subscription to ``trigger``, and send them.

        ``data`` builds the event's ``data`` object for one subscription (its payload
        options decide what it carries).
        """
        for subscription in list(self.subscriptions.values()):
            if not subscription.active or subscription.deactivated:
                continue
            if trigger not in subscription.triggers:
                continue
            body = json.dumps([{"event": trigger, "data": data(subscription)}]).encode()
            event = WebhookEvent(
                uuid=new_uuid(),
                subscription=subscription,
                url=subscription.url,
                type=trigger,
                body=body,
                signature=sign(subscription.shared_key, body),
                event_time=now(),
            )
            self.events[event.uuid] = event
            if self.deliver is not None:
                self.deliver(event)

    def search(
        self,
        *,
        since: datetime | None = None,
        to: datetime | None = None,
        types: list[str] | None = None,
        status_groups: list[int] | None = None,
        errors: list[str] | None = None,
    ) -> list[WebhookEvent]:
        """Events newest first, filtered as ``GET /public/v1/webhook-events`` filters them."""
        found = sorted(self.events.values(), key=lambda e: e.event_time, reverse=True)
        if since is not None:
            found = [e for e in found if e.event_time >= since]
        if to is not None:
            found = [e for e in found if e.event_time <= to]
        if types:
            found = [e for e in found if e.type in types]
        if status_groups:
            found = [
                e for e in found if e.http_status_code is not None and _group(e) in status_groups
            ]
        if errors:
            found = [e for e in found if e.error in errors]
        return found
