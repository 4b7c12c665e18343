"""``/public/v1/documents``: list, create, status, details, download, send, status, delete.

A created document is ``document.uploaded`` until processed; meanwhile PandaDoc answers
its details, fields and send with 409 and its download with 202 and ``Retry-After`` (the
file is not ready), and so does the emulator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping

from ..bodies import read_json, read_upload
from ..errors import ApiError, conflict, not_found, permissions_error, request_error
from ..model.document_views import create_view, details_view, list_item, send_view, status_view
from ..model.documents import (
    ORDER_FIELDS,
    STATUS_CODES,
    Document,
    DocumentQuery,
    NewRecipient,
    parse_status_filter,
)
from ..model.templates import Template
from ..pdf import render_pdf
from ..validation import Fields, Invalid, query_int
from .common import document, no_content, origin, state
from .operations import Operation

__all__ = ["OPERATIONS"]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
DEFAULT_SESSION_LIFETIME_S = 3600

# ---- list --------------------------------------------------------------------------


def _status_param(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if not raw:
        return None
    status = parse_status_filter(raw)
    if status is None:
        raise Invalid({name: [f'"{raw}" is not a valid choice.']})
    return status


def _moment_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid({name: ["Datetime has wrong format. Use ISO 8601."]}) from None


def _document_query(query: MultiMapping[str]) -> DocumentQuery:
    order_by = query.get("order_by") or "-date_created"
    if order_by.removeprefix("-") not in ORDER_FIELDS:
        raise Invalid({"order_by": [f'"{order_by}" is not a valid choice.']})
    deleted = query.get("deleted", "false").lower()
    if deleted not in ("true", "false", "1", "0"):
        raise Invalid({"deleted": ["Must be a valid boolean."]})
    metadata = tuple(
        (name.removeprefix("metadata_"), value)
        for name, value in query.items()
        if name.startswith("metadata_")
    )
    return DocumentQuery(
        q=query.get("q") or None,
        id=query.get("id") or None,
        status=_status_param(query, "status"),
        status_ne=_status_param(query, "status__ne"),
        template_id=query.get("template_id") or None,
        folder_uuid=query.get("folder_uuid") or None,
        contact_id=query.get("contact_id") or None,
        tag=query.get("tag") or None,
        metadata=metadata,
        deleted=deleted in ("true", "1"),
        created_from=_moment_param(query, "created_from"),
        created_to=_moment_param(query, "created_to"),
        modified_from=_moment_param(query, "modified_from"),
        modified_to=_moment_param(query, "modified_to"),
        completed_from=_moment_param(query, "completed_from"),
        completed_to=_moment_param(query, "completed_to"),
        order_by=order_by,
    )


async def list_documents(request: web.Request) -> web.Response:
    """``GET /public/v1/documents``: filter (q, status, tag, template, folder, dates...),
    sort (order_by), page (count, page)."""
    query = request.query
    count = query_int(query, "count", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = query_int(query, "page", 1, 1, 1_000_000)
    found = state(request).documents.search(_document_query(query))
    window = found[(page - 1) * count : page * count]
    return web.json_response({"results": [list_item(doc) for doc in window]})


# ---- create ------------------------------------------------------------------------


def _recipient(fields: Fields) -> NewRecipient:
    email = fields.email("email", nullable=True)
    phone = fields.string("phone", nullable=True, blank=False)
    first_name = fields.string("first_name", nullable=True) or ""
    last_name = fields.string("last_name", nullable=True) or ""
    role = fields.string("role", nullable=True) or ""
    signing_order = fields.integer("signing_order", low=1)
    fields.mapping("delivery_methods")
    fields.mapping("redirect")
    if not fields.errors and not email and not phone:
        fields.errors["email"] = ["Either email or phone is required."]
    return NewRecipient(email, first_name, last_name, role, signing_order, phone)


def _token(fields: Fields) -> dict[str, str]:
    name = fields.string("name", required=True, blank=False) or ""
    value = fields.string("value", required=True) or ""
    return {"name": name, "value": value}


def _new_document(
    request: web.Request, fields: Fields, *, template: Template | None, source: str | None
) -> Document:
    """Read the fields every kind of create shares, then store the document."""
    emulator = state(request)
    name = fields.string("name", required=template is None, blank=False)
    recipients = fields.objects("recipients", _recipient, required=template is not None) or []
    tokens = fields.objects("tokens", _token) or []
    values = fields.mapping("fields") or {}
    metadata = fields.mapping("metadata") or {}
    tags = fields.strings("tags") or []
    folder_uuid = fields.string("folder_uuid", blank=False)
    for flag in ("detect_title_variables", "parse_form_fields"):
        fields.boolean(flag)
    fields.mapping("owner")
    if folder_uuid is not None and emulator.folders.get(folder_uuid) is None:
        fields.errors["folder_uuid"] = ["Folder not found."]
    if template is not None and template.roles:
        wrong = [r.role for r in recipients if r.role and r.role not in template.roles]
        if wrong:
            fields.errors["recipients"] = [f"Role {wrong[0]!r} is not a role of the template."]
    fields.done()
    return emulator.documents.create(
        name or (template.name if template else "Untitled document"),
        template=template,
        recipients=recipients,
        fields={
            key: value.get("value") if isinstance(value, dict) else value
            for key, value in values.items()
        },
        tokens=tokens,
        metadata=metadata,
        tags=tags,
        folder_uuid=folder_uuid,
        file_sha256=source,
        link_origin=origin(request),
    )


async def create_document(request: web.Request) -> web.Response:
    """``POST /public/v1/documents``: from a template or a URL (JSON), or from an uploaded
    PDF (multipart/form-data: a ``file`` part and a ``data`` part with the JSON fields)."""
    if request.content_type == "multipart/form-data":
        upload = await read_upload(request)
        doc = _new_document(request, Fields(upload.data), template=None, source=upload.file_sha256)
        return web.json_response(create_view(doc, origin(request)), status=201)
    fields = Fields(await read_json(request))
    template_uuid = fields.string("template_uuid", blank=False)
    url = fields.url("url")
    template = None
    if template_uuid is not None:
        template = state(request).templates.get(template_uuid)
        if template is None:
            fields.errors["template_uuid"] = ["Template not found."]
    elif url is None and "url" not in fields.errors:
        fields.errors["template_uuid"] = ["Either template_uuid or url is required."]
    doc = _new_document(request, fields, template=template, source=None)
    return web.json_response(create_view(doc, origin(request)), status=201)


# ---- reading -----------------------------------------------------------------------


def processed(doc: Document) -> Document:
    """The document, if it is past processing; else PandaDoc's 409."""
    if doc.status == "document.uploaded":
        raise conflict(
            doc.id,
            doc.status,
            "The document is still being processed (document.uploaded). Poll its status"
            " until it is document.draft, or wait for the document_state_changed webhook.",
        )
    return doc


async def status_document(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}``: the document's status."""
    return web.json_response(status_view(document(request)))


async def details_document(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/details``: everything about the document."""
    return web.json_response(details_view(processed(document(request))))


def _attachment(filename: str) -> str:
    """RFC 6266 ``Content-Disposition`` with an ASCII fallback and a UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9 ._()#-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _pdf(doc: Document) -> web.Response:
    pdf = render_pdf(doc.name, f"PandaDoc emulator - {doc.id} - {doc.status}")
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": _attachment(f"{doc.name}.pdf")},
    )


async def download_document(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/download``: a real (tiny) PDF; 202 with Retry-After
    while the document is still being processed."""
    doc = document(request)
    if doc.status == "document.uploaded":
        wait = max(1, math.ceil(doc.ready_at - state(request).clock()))
        return web.Response(status=202, headers={"Retry-After": str(wait)})
    return _pdf(doc)


async def download_protected_document(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/download-protected``: the completed, signed PDF."""
    doc = document(request)
    if doc.status != "document.completed":
        raise conflict(doc.id, doc.status, "Only a completed document has a protected PDF.")
    return _pdf(doc)


# ---- changing ----------------------------------------------------------------------


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


async def delete_document(request: web.Request) -> web.Response:
    """``DELETE /public/v1/documents/{id}``: 204, then the id answers 404."""
    doc = state(request).documents.get_even_deleted(request.match_info["id"])
    if doc is None:
        raise not_found()
    if doc.deleted:
        raise permissions_error()  # what PandaDoc answers for a document already deleted
    state(request).documents.delete(doc)
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


_BASE = "/public/v1/documents"

OPERATIONS = [
    Operation("listDocuments", "GET", _BASE, list_documents, "list_status_delete"),
    Operation(
        "createDocument",
        "POST",
        _BASE,
        create_document,
        "create_from_template",
        invalid_type="validation_error",
        upload_operation_id="createDocumentFromUpload",
    ),
    Operation("statusDocument", "GET", _BASE + "/{id}", status_document, "list_status_delete"),
    Operation("deleteDocument", "DELETE", _BASE + "/{id}", delete_document, "list_status_delete"),
    Operation("detailsDocument", "GET", _BASE + "/{id}/details", details_document, "details"),
    Operation("downloadDocument", "GET", _BASE + "/{id}/download", download_document, "download"),
    Operation(
        "downloadProtectedDocument",
        "GET",
        _BASE + "/{id}/download-protected",
        download_protected_document,
        "download_protected",
    ),
    Operation("sendDocument", "POST", _BASE + "/{id}/send", send_document, "send"),
    Operation("changeDocumentStatus", "PATCH", _BASE + "/{id}/status", change_document_status),
    Operation("createDocumentLink", "POST", _BASE + "/{id}/session", create_document_link),
]
