"""``/public/v1/documents``: list, status, details, download, delete.

A created document is ``document.uploaded`` until processed; meanwhile PandaDoc answers
its details with 409 and its download with 202 and ``Retry-After`` (the file is not
ready), and so does the emulator. Creating is in ``document_create``, sending and changing
status in ``document_actions``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping

from ..errors import conflict, not_found, permissions_error
from ..model.document_views import details_view, list_item, status_view
from ..model.documents import ORDER_FIELDS, Document, DocumentQuery, parse_status_filter
from ..pdf import render_pdf
from ..validation import Invalid, query_int
from .common import document, no_content, processed, state
from .operations import Operation

__all__ = ["OPERATIONS"]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

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


# ---- reading -----------------------------------------------------------------------


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


async def delete_document(request: web.Request) -> web.Response:
    """``DELETE /public/v1/documents/{id}``: 204, then the id answers 404."""
    doc = state(request).documents.get_even_deleted(request.match_info["id"])
    if doc is None:
        raise not_found()
    if doc.deleted:
        raise permissions_error()  # what PandaDoc answers for a document already deleted
    state(request).documents.delete(doc)
    return no_content()


_BASE = "/public/v1/documents"

OPERATIONS = [
    Operation("listDocuments", "GET", _BASE, list_documents, "list_status_delete"),
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
]
