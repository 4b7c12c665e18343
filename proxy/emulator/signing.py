"""``/s/{token}``: the page a recipient's signing link (or a document session) opens.

PandaDoc's links open its signing app; the emulator's open a plain page that says which
document and recipient it is for, with one button that completes the document as that
recipient. Opening it marks a sent document viewed, completing it sends
``recipient_completed`` (and, for the last signer, the document's completion), so an
integration's whole signing flow can be driven from a browser test or with two requests.
"""

from __future__ import annotations

import html

from aiohttp import web

from .errors import not_found
from .model.documents import Document, Recipient
from .state import EMULATOR_STATE

__all__ = ["add_signing_routes"]

_FORM_TYPE = "application/x-www-form-urlencoded"


def _find(request: web.Request) -> tuple[Document, Recipient]:
    found = request.app[EMULATOR_STATE].documents.by_link(request.match_info["token"])
    if found is None:
        raise not_found()
    return found


def _page(doc: Document, recipient: Recipient, token: str) -> web.Response:
    who = html.escape(f"{recipient.first_name} {recipient.last_name}".strip() or "recipient")
    done = recipient.has_completed or doc.status == "document.completed"
    action = (
        "<p>You have completed this document.</p>"
        if done
        else f"<form method='post' action='/s/{html.escape(token)}'>"
        "<button type='submit' name='decision' value='complete'>Complete as "
        f"{who}</button></form>"
    )
    body = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(doc.name)}</title></head><body>\n"
        f"<h1>{html.escape(doc.name)}</h1>\n"
        f"<p>PandaDoc emulator: document <code>{doc.id}</code>, status"
        f" <code>{doc.status}</code>, for {who}"
        f" (<code>{html.escape(recipient.email or '')}</code>).</p>\n{action}\n</body></html>\n"
    )
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


async def signing_page(request: web.Request) -> web.Response:
    """``GET /s/{token}``: the signing page; a sent document becomes viewed."""
    doc, recipient = _find(request)
    request.app[EMULATOR_STATE].documents.view(doc)
    return _page(doc, recipient, request.match_info["token"])


async def complete_signing(request: web.Request) -> web.Response:
    """``POST /s/{token}``: complete the document as this recipient."""
    doc, recipient = _find(request)
    form = await request.post() if request.content_type == _FORM_TYPE else {}
    if form.get("decision") == "complete" and doc.status in ("document.sent", "document.viewed"):
        request.app[EMULATOR_STATE].documents.complete_recipient(doc, recipient)
    raise web.HTTPSeeOther(f"/s/{request.match_info['token']}")


def add_signing_routes(app: web.Application) -> None:
    app.router.add_get("/s/{token}", signing_page)
    app.router.add_post("/s/{token}", complete_signing)
