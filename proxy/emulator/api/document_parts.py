"""A document's fields and recipients (``/public/v1/documents/{id}/fields``, ``/recipients``)."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found, request_error
from ..model.document_views import field_view
from ..model.documents import Document, Recipient
from ..validation import Invalid
from .common import document, json_fields, no_content, processed, state
from .operations import Operation

__all__ = ["OPERATIONS"]

#: Where PandaDoc refuses changes to recipients: a closed document.
_CLOSED = ("document.voided", "document.declined")


async def list_document_fields(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/fields``: the fillable fields and who fills them."""
    doc = processed(document(request))
    return web.json_response({"fields": [field_view(doc, f) for f in doc.fields]})


def _recipient(request: web.Request, doc: Document) -> Recipient:
    recipient = doc.recipient(request.match_info["recipient_id"])
    if recipient is None:
        raise not_found()
    return recipient


async def add_document_recipient(request: web.Request) -> web.Response:
    """``POST /public/v1/documents/{id}/recipients``: add a contact as a CC recipient."""
    doc = processed(document(request))
    fields = await json_fields(request)
    contact_id = fields.string("id", required=True, blank=False)
    kind = fields.choice("kind", ("contact", "contact_group"), required=True)
    fields.done()
    if doc.status in _CLOSED:
        raise request_error(f"Recipients cannot be added to a {doc.status} document.")
    if kind == "contact_group":
        raise Invalid({"kind": ["Contact groups are not available in the emulator."]})
    contact = state(request).contacts.get(contact_id or "")
    if contact is None:
        raise Invalid({"id": ["Contact not found."]})
    recipient = state(request).documents.add_cc(
        doc, contact.email, contact.first_name or "", contact.last_name or ""
    )
    return web.json_response({"recipient_id": recipient.id})


async def edit_document_recipient(request: web.Request) -> web.Response:
    """``PATCH .../recipients/recipient/{recipient_id}``: change a recipient of a draft."""
    doc = processed(document(request))
    recipient = _recipient(request, doc)
    fields = await json_fields(request)
    email = fields.email("email", nullable=True)
    phone = fields.string("phone", nullable=True)
    first_name = fields.string("first_name", nullable=True)
    last_name = fields.string("last_name", nullable=True)
    delivery = fields.mapping("delivery_methods")
    redirect = fields.mapping("redirect")
    for name in ("company", "job_title", "title", "state", "street_address", "city", "country"):
        fields.string(name, nullable=True)
    fields.string("postal_code", nullable=True)
    fields.mapping("verification_settings")
    fields.done()
    if doc.status != "document.draft":
        raise request_error(f"Recipients can be edited only in document.draft, not {doc.status}.")
    if fields.present("email"):
        recipient.email = email
    if fields.present("phone"):
        recipient.phone = phone
    recipient.first_name = first_name if first_name is not None else recipient.first_name
    recipient.last_name = last_name if last_name is not None else recipient.last_name
    if delivery is not None:
        recipient.delivery_methods = {
            "email": bool(delivery.get("email", recipient.delivery_methods["email"])),
            "sms": bool(delivery.get("sms", recipient.delivery_methods["sms"])),
        }
    if redirect is not None:
        recipient.redirect = {
            "is_enabled": bool(redirect.get("is_enabled")),
            "url": str(redirect.get("url") or ""),
        }
    return no_content()


async def delete_document_recipient(request: web.Request) -> web.Response:
    """``DELETE .../recipients/{recipient_id}``: remove a recipient from a draft."""
    doc = processed(document(request))
    recipient = _recipient(request, doc)
    if doc.status != "document.draft":
        raise request_error(f"Recipients can be removed only in document.draft, not {doc.status}.")
    state(request).documents.remove_recipient(doc, recipient)
    return no_content()


_BASE = "/public/v1/documents/{id}"

OPERATIONS = [
    Operation("listDocumentFields", "GET", _BASE + "/fields", list_document_fields),
    Operation(
        "addDocumentRecipient",
        "POST",
        _BASE + "/recipients",
        add_document_recipient,
        invalid_type="request_error",
    ),
    Operation(
        "editDocumentRecipient",
        "PATCH",
        _BASE + "/recipients/recipient/{recipient_id}",
        edit_document_recipient,
    ),
    Operation(
        "deleteDocumentRecipient",
        "DELETE",
        _BASE + "/recipients/{recipient_id}",
        delete_document_recipient,
    ),
]
