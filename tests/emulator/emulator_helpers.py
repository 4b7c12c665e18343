"""Helpers for the emulator's own tests: plain HTTP, the SDK check, a webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from pandadoc_client.model_utils import ModelNormal

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
Sdk = Callable[..., Awaitable[Any]]

SEEDED_IDS = {"A7bqWzJk3fTNm8xYpRv2Lc", "Qh4sDn9KeU6tBw2ZgXy5Mo", "Vr8cLp3JaN7wEf5TkYq1Hs"}
DRAFT_ID = "A7bqWzJk3fTNm8xYpRv2Lc"
SENT_ID = "Qh4sDn9KeU6tBw2ZgXy5Mo"
COMPLETED_ID = "Vr8cLp3JaN7wEf5TkYq1Hs"
TEMPLATE_ID = "EmuTemplate00000000001"
CONTACT_ID = "EmuContact000000000001"
FOLDER_ID = "EmuFolder0000000000001"

#: Fields the emulator leaves out on purpose, by SDK model and field, with the reason.
NOT_ALWAYS_PRESENT = {
    # PandaDoc's spec makes a successful delivery's error null, which the SDK (generated
    # from an older spec) refuses; the emulator leaves the field out instead.
    ("WebhookEventItemResponse", "error"),
    ("WebhookEventDetailsResponse", "error"),
}


class FakeClock:
    """A monotonic clock the test moves by hand, to skip long lifetimes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def fetch(
    client: Client, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Status, decoded body (JSON when it is JSON), and the released response."""
    async with client.request(method, path, **kwargs) as response:
        raw = await response.read()
        body: Any = raw
        if response.content_type == "application/json" and raw:
            body = json.loads(raw)
        return response.status, body, response


async def wait_until(condition: Callable[[], bool], *, within_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds, for state no event announces (a delivery
    recorded on an event); fails the test after ``within_s``."""
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def assert_complete(value: object, where: str = "answer") -> None:
    """Every field the SDK model declares is present (and, the SDK checked, of its type).

    Recurses into nested models and lists; free-form objects (``metadata``) are not
    looked into. ``NOT_ALWAYS_PRESENT`` names the deliberate exceptions.
    """
    if isinstance(value, ModelNormal):
        model = type(value).__name__
        for name in value.openapi_types:
            if name not in value:
                assert (model, name) in NOT_ALWAYS_PRESENT, f"{where}.{name} is missing ({model})"
                continue
            assert_complete(value[name], f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_complete(item, f"{where}[{index}]")


@dataclass
class Delivery:
    event_id: str
    signature: str
    body: bytes
    query: dict[str, str]


@dataclass
class Receiver:
    """A webhook endpoint on a real socket: answers the statuses in ``answers`` in turn
    (then 200) and records every delivery."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def verified(self, shared_key: str) -> list[Delivery]:
        """The deliveries whose signature is the HMAC-SHA256 of their body with the key."""
        return [
            d
            for d in self.deliveries
            if hmac.compare_digest(
                d.signature, hmac.new(shared_key.encode(), d.body, hashlib.sha256).hexdigest()
            )
        ]

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(
            Delivery(
                event_id=request.headers.get("X-PandaDoc-Webhook-Event-Id", ""),
                signature=request.query.get("signature", ""),
                body=body,
                query=dict(request.query),
            )
        )
        status = self.answers.pop(0) if self.answers else 200
        return web.json_response({"received": True}, status=status)
