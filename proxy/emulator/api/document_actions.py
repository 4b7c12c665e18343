"""Moving a document on: send it, change its status, open a signing session."""

from __future__ import annotations

from aiohttp import web

from ..bodies import read_json
from ..errors import ApiError, conflict, request_error
from ..model.document_views import send_view
from ..model.documents import STATUS_CODES
from ..validation import Fields, Invalid
from .common import document, no_content, origin, processed, state
from .operations import Operation

__all__ = ["OPERATIONS"]

DEFAULT_SESSION_LIFETIME_S = 3600


async def send_document(request: web.Request) -> web.Response:
    """``POST /public/v1/documents/{id}/send``: draft to sent; recipients get their links."""
    doc = processed(document(request))
    fields = Fields(await read_json(request) if request.body_exists else {})
    fields.string("subject")
    fields.string("message")
    fields.boolean("silent")
    fields.mapping("sender")
    fields.mapping("forwarding_settings")
    fields.mapping("selected_approvers")
    fields.done()
    if doc.status != "document.draft":
        raise request_error(f"A document can be sent only in document.draft, not {doc.status}.")
    if not doc.recipients:
        raise request_error("The document has no recipients to send it to.")
    state(request).documents.send(doc, origin(request))
    return web.json_response(send_view(doc))


#: PATCH .../status: the statuses that may be set, and from which (PandaDoc's table).


_MANUAL_STATUSES: dict[int, tuple[str, ...]] = {
    2: ("document.draft", "document.sent", "document.viewed"),
    11: ("document.sent", "document.viewed"),
    12: ("document.draft", "document.sent", "document.viewed", "document.completed"),
    10: (),  # "paid" needs a payment app, which the emulator does not have
}


async def change_document_status(request: web.Request) -> web.Response:
    """``PATCH /public/v1/documents/{id}/status``: completed (2), voided (11), declined (12)."""
    doc = processed(document(request))
    fields = Fields(await read_json(request))
    code = fields.choice("status", tuple(_MANUAL_STATUSES), required=True)
    fields.string("note")
    fields.boolean("notify_recipients")
    fields.done()
    assert isinstance(code, int)
    target = STATUS_CODES[code]
    if doc.status not in _MANUAL_STATUSES[code]:
        raise conflict(doc.id, doc.status, f"A {doc.status} document cannot be set to {target}.")
    state(request).documents.set_status(doc, target)
    return no_content()


async def create_document_link(request: web.Request) -> web.Response:
    """``POST /public/v1/documents/{id}/session``: a signing session for one recipient."""
    doc = document(request)
    fields = Fields(await read_json(request))
    email = fields.string("recipient", required=True, blank=False)
    lifetime = fields.number("lifetime", low=1)
    fields.done()
    if doc.status not in ("document.sent", "document.viewed", "document.completed"):
        detail = f"Cannot create session ID for a document in {doc.status} status"
        raise ApiError(400, "state_error", detail)
    recipient = next(
        (r for r in doc.recipients if (r.email or "").casefold() == (email or "").casefold()),
        None,
    )
    if recipient is None:
        raise Invalid({"recipient": [f"{email} is not a recipient of this document."]})
    session = state(request).documents.open_session(
        doc, recipient, lifetime or DEFAULT_SESSION_LIFETIME_S
    )
    expires_at = session.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return web.json_response({"id": session.id, "expires_at": expires_at}, status=201)


_BASE = "/public/v1/documents/{id}"

OPERATIONS = [
    Operation("sendDocument", "POST", _BASE + "/send", send_document, "send"),
    Operation("changeDocumentStatus", "PATCH", _BASE + "/status", change_document_status),
    Operation("createDocumentLink", "POST", _BASE + "/session", create_document_link),
]
