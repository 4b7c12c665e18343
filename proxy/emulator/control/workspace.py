"""Control routes for the workspace: moving documents on, and webhook deliveries."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..model.documents import Document, parse_status_filter
from ..state import EMULATOR_STATE
from ..webhook_delivery import WEBHOOKS
from .core import bad_request, json_object

__all__ = ["add_routes"]


def _document(request: web.Request) -> Document | web.Response:
    doc = request.app[EMULATOR_STATE].documents.get(request.match_info["id"])
    if doc is None:
        return web.json_response({"type": "not_found", "detail": "Not found."}, status=404)
    return doc


async def complete_document(request: web.Request) -> web.Response:
    """``POST /_emulator/documents/{id}/complete``: every signer signs, as if in PandaDoc."""
    doc = _document(request)
    if isinstance(doc, web.Response):
        return doc
    if doc.status not in ("document.sent", "document.viewed"):
        return bad_request(f"only a sent or viewed document can complete, not {doc.status}")
    request.app[EMULATOR_STATE].documents.complete(doc)
    return web.json_response({"id": doc.id, "status": doc.status})


async def set_document_status(request: web.Request) -> web.Response:
    """``POST /_emulator/documents/{id}/status``: any status (``{"status": "document.viewed"}``),
    with its webhook, for states an integration must handle but cannot cause itself."""
    doc = _document(request)
    if isinstance(doc, web.Response):
        return doc
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    raw = body.get("status")
    status = parse_status_filter(str(raw)) if isinstance(raw, str | int) else None
    if status is None or isinstance(raw, bool):
        return bad_request("status must be a document status (document.viewed) or its code")
    request.app[EMULATOR_STATE].documents.set_status(doc, status)
    return web.json_response({"id": doc.id, "status": doc.status})


async def get_webhook_events(request: web.Request) -> web.Response:
    """``GET /_emulator/webhook-events``: every event with each delivery attempt."""
    events = request.app[EMULATOR_STATE].webhooks.search()
    return web.json_response({"events": [event.control_view() for event in events]})


async def retry_webhook_event(request: web.Request) -> web.Response:
    """``POST /_emulator/webhook-events/{id}/retry``: deliver it again (PandaDoc's "Retry")."""
    event = request.app[EMULATOR_STATE].webhooks.events.get(request.match_info["id"])
    if event is None:
        return web.json_response({"type": "not_found", "detail": "Not found."}, status=404)
    request.app[WEBHOOKS].submit(event)
    return web.json_response(event.control_view(), status=202)


async def wait_for_webhooks(request: web.Request) -> web.Response:
    """``POST /_emulator/webhooks/wait[?timeout=S]``: return once no delivery is in progress
    (200), or after S seconds (default 10) with 504."""
    try:
        timeout = float(request.query.get("timeout", "10"))
    except ValueError:
        return bad_request("timeout must be a number of seconds")
    try:
        async with asyncio.timeout(timeout):
            await request.app[WEBHOOKS].idle()
    except TimeoutError:
        return web.json_response({"idle": False}, status=504)
    return web.json_response({"idle": True})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/_emulator/documents/{id}/complete", complete_document)
    app.router.add_post("/_emulator/documents/{id}/status", set_document_status)
    app.router.add_get("/_emulator/webhook-events", get_webhook_events)
    app.router.add_post("/_emulator/webhook-events/{id}/retry", retry_webhook_event)
    app.router.add_post("/_emulator/webhooks/wait", wait_for_webhooks)
