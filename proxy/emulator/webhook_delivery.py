"""Sending webhook events: real HTTP POSTs to each subscription's URL, retried on failure.

Each event is POSTed as PandaDoc posts it: the JSON array as the body, the signature as
``?signature=<hex HMAC-SHA256 of the body with the shared key>`` added to the URL's query,
and the event's id in ``X-PandaDoc-Webhook-Event-Id``. A 2xx answer delivers it. Anything
else (another status, no connection, no answer within ``webhook_timeout_s``) is recorded on
the event and the delivery is tried again after ``webhook_retry_delay_s``, doubled each
time, up to ``webhook_attempts`` attempts in all; every attempt sends the same bytes,
signature and event id, so a receiver can tell a retry from a new event. A 410 answer
deactivates the subscription at once, as PandaDoc does.

Deliveries are background tasks of the app: ``webhook_delivery`` (a cleanup context)
opens their client session when the app starts, and on shutdown cancels the deliveries
still running and closes the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .model.common import now
from .model.webhooks import Attempt, WebhookEvent
from .settings import EmulatorSettings
from .state import EMULATOR_STATE

__all__ = ["EVENT_ID_HEADER", "WEBHOOKS", "WebhookSender", "webhook_delivery"]

EVENT_ID_HEADER = "X-PandaDoc-Webhook-Event-Id"
#: How much of a receiver's answer the event keeps (PandaDoc shows it in its history).
_KEPT_BODY = 64 * 1024


def signed_url(url: str, signature: str) -> str:
    """``url`` with ``signature=...`` appended to its query, keeping the query it has."""
    separator = "&" if urlsplit(url).query else "?"
    if url.endswith(("?", "&")):
        separator = ""
    return f"{url}{separator}signature={signature}"


def _headers_text(headers: Iterable[tuple[str, str]]) -> str:
    """Response headers the way PandaDoc's history shows them: ``[name:"value", ...]``."""
    return "[" + ", ".join(f'{name.lower()}:"{value}"' for name, value in headers) + "]"


class WebhookSender:
    """Runs one task per event being delivered; see the module docstring."""

    def __init__(self, settings: EmulatorSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, event: WebhookEvent) -> None:
        """Start delivering ``event`` (called from synchronous code on the app's loop)."""
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until no delivery is in progress (for tests and ``/_emulator`` callers)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, event: WebhookEvent) -> None:
        event.pending = True
        try:
            for attempt in range(self._settings.webhook_attempts):
                if attempt:
                    await asyncio.sleep(self._settings.webhook_retry_delay_s * 2 ** (attempt - 1))
                if await self._attempt(event) or event.subscription.deactivated:
                    return
        finally:
            event.pending = False

    async def _attempt(self, event: WebhookEvent) -> bool:
        """One POST; records its outcome on the event; True when delivered."""
        event.delivery_time = now()
        status: int | None = None
        error: str | None = None
        parts = urlsplit(event.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            error = "NOT_VALID_URL"
        else:
            try:
                timeout = aiohttp.ClientTimeout(total=self._settings.webhook_timeout_s)
                async with self._session.post(
                    signed_url(event.url, event.signature),
                    data=event.body,
                    headers={"Content-Type": "application/json", EVENT_ID_HEADER: event.uuid},
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    body = await response.content.read(_KEPT_BODY)
                    event.response_body = body.decode("utf-8", errors="replace")
                    event.response_headers = _headers_text(response.headers.items())
            except TimeoutError:
                error = "TIMEOUT_ERROR"
            except aiohttp.ClientConnectionError:
                error = "CONNECT_ERROR"
            except aiohttp.ClientError:
                error = "INTERNAL_ERROR"
        event.http_status_code, event.error = status, error
        event.attempts.append(Attempt(event.delivery_time, status, error))
        if status == 410:
            event.subscription.deactivated = True
            event.subscription.active = False
        return status is not None and 200 <= status < 300


#: The app's sender, while it runs.
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("emulator_webhooks", WebhookSender)


async def webhook_delivery(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the session and the sender; on shutdown, no delivery is left over."""
    state = app[EMULATOR_STATE]
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    sender = WebhookSender(state.settings, session)
    app[WEBHOOKS] = sender
    state.webhooks.deliver = sender.submit
    try:
        yield
    finally:
        state.webhooks.deliver = None
        with contextlib.suppress(Exception):
            await sender.close()
        await session.close()
