"""The ``/public/v1`` document routes: the part of PandaDoc's API clients call most.

Every route sits behind ``require_auth``, so the proxy under test has to send
a valid bearer token (or API key) for anything here to answer 2xx.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiohttp import BodyPartReader, web

from .auth import api_error, require_auth
from .documents import ORDER_FIELDS, Document, parse_status_filter
from .pdf import render_pdf
from .state import EMULATOR_STATE

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_MAX_DATA_PART = 1 << 20  # the JSON "data" part of an upload; the file part is streamed


@dataclass
class NewDocument:
    """A validated create request."""

    name: str | None
    template: dict[str, str] | None
    recipients: list[dict[str, object]]
    metadata: dict[str, object]
    tags: list[str]


class RequestError(Exception):
    """A client mistake, answered 400 ``{"type": "request_error", "detail": ...}``."""


def _not_found() -> web.Response:
    return api_error(404, "not_found", "Not found.")


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise RequestError(f"{name} must be an integer between {low} and {high}.")
    return int(raw)


@require_auth
async def list_documents(request: web.Request) -> web.Response:
    """``GET /public/v1/documents``: filter (q, status), sort (order_by), page (count, page)."""
    query = request.query
    try:
        count = _int_param(query, "count", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        page = _int_param(query, "page", 1, 1, 1_000_000)
        status = None
        if query.get("status"):
            status = parse_status_filter(query["status"])
            if status is None:
                raise RequestError(f"Unknown status {query['status']!r}.")
        order_by = query.get("order_by") or "-date_created"
        if order_by.removeprefix("-") not in ORDER_FIELDS:
            raise RequestError(f"order_by must be one of {', '.join(ORDER_FIELDS)}.")
    except RequestError as exc:
        return api_error(400, "request_error", str(exc))
    found = request.app[EMULATOR_STATE].documents.search(
        q=query.get("q"), status=status, order_by=order_by
    )
    window = found[(page - 1) * count : page * count]
    return web.json_response({"results": [doc.list_item() for doc in window]})


def _document_fields(data: object, *, needs_source: bool) -> NewDocument:
    """Validate a create request's JSON (PandaDoc's DocumentCreateRequest fields)."""
    if not isinstance(data, dict):
        raise RequestError("The request body must be a JSON object.")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise RequestError("name must be a string.")
    template_uuid, url = data.get("template_uuid"), data.get("url")
    for key, value in (("template_uuid", template_uuid), ("url", url)):
        if value is not None and (not isinstance(value, str) or not value):
            raise RequestError(f"{key} must be a non-empty string.")
    if needs_source and template_uuid is None and url is None:
        raise RequestError("Either template_uuid or url is required.")
    recipients = data.get("recipients", [])
    if not isinstance(recipients, list) or not all(
        isinstance(r, dict) and isinstance(r.get("email"), str) for r in recipients
    ):
        raise RequestError("recipients must be a list of objects, each with an email.")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise RequestError("metadata must be an object.")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RequestError("tags must be a list of strings.")
    if name is None and isinstance(url, str):
        name = urlsplit(url).path.rsplit("/", 1)[-1] or None
    template = None
    if isinstance(template_uuid, str):
        template = {"id": template_uuid, "name": f"Template {template_uuid}"}
    return NewDocument(name, template, recipients, metadata, tags)


def _parse_json(raw: bytes | str) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RequestError(f"Invalid JSON: {exc}") from None


async def _read_upload(request: web.Request) -> tuple[NewDocument, str]:
    """Stream a ``multipart/form-data`` upload: hash its ``file``, parse its ``data``.

    The file is never held in memory; only its SHA-256 is kept.
    """
    reader = await request.multipart()
    data: object = {}
    file_hash: str | None = None
    file_name: str | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise RequestError("Nested multipart bodies are not supported.")
        if part.name == "file":
            digest, length = hashlib.sha256(), 0
            while chunk := await part.read_chunk(65536):
                digest.update(chunk)
                length += len(chunk)
            if length == 0:
                raise RequestError("The uploaded file is empty.")
            file_hash, file_name = digest.hexdigest(), part.filename
        elif part.name == "data":
            raw = bytearray()
            while chunk := await part.read_chunk(65536):
                raw += chunk
                if len(raw) > _MAX_DATA_PART:
                    raise RequestError("The data part is too large.")
            data = _parse_json(bytes(raw))
        else:
            await part.release()
    if file_hash is None:
        raise RequestError("A file part is required.")
    fields = _document_fields(data, needs_source=False)
    fields.name = fields.name or file_name
    return fields, file_hash


@require_auth
async def create_document(request: web.Request) -> web.Response:
    """``POST /public/v1/documents``: JSON (from a template or URL) or a multipart upload."""
    file_hash = None
    try:
        if request.content_type == "multipart/form-data":
            fields, file_hash = await _read_upload(request)
        elif request.content_type == "application/json":
            fields = _document_fields(_parse_json(await request.read()), needs_source=True)
        else:
            await request.read()
            detail = f'Unsupported media type "{request.content_type}" in request.'
            return api_error(415, "request_error", detail)
    except RequestError as exc:
        return api_error(400, "request_error", str(exc))
    except ValueError as exc:  # a malformed multipart body
        return api_error(400, "request_error", f"Malformed multipart body: {exc}")
    doc = request.app[EMULATOR_STATE].documents.create(
        fields.name or "Untitled document",
        template=fields.template,
        recipients=fields.recipients,
        metadata=fields.metadata,
        tags=fields.tags,
        file_sha256=file_hash,
    )
    return web.json_response(doc.create_view(str(request.url.origin())), status=201)


def _document(request: web.Request) -> Document | None:
    return request.app[EMULATOR_STATE].documents.get(request.match_info["id"])


@require_auth
async def document_status(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}``: the document's status."""
    doc = _document(request)
    return _not_found() if doc is None else web.json_response(doc.status_view())


@require_auth
async def document_details(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/details``: everything about the document."""
    doc = _document(request)
    return _not_found() if doc is None else web.json_response(doc.details_view())


def _attachment(filename: str) -> str:
    """RFC 6266 ``Content-Disposition`` with an ASCII fallback and a UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9 ._()#-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@require_auth
async def download_document(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/{id}/download``: a real (tiny) PDF."""
    doc = _document(request)
    if doc is None:
        return _not_found()
    pdf = render_pdf(doc.name, f"PandaDoc emulator - {doc.id} - {doc.status}")
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": _attachment(f"{doc.name}.pdf")},
    )


@require_auth
async def delete_document(request: web.Request) -> web.Response:
    """``DELETE /public/v1/documents/{id}``: 204, then the id answers 404."""
    deleted = request.app[EMULATOR_STATE].documents.delete(request.match_info["id"])
    return web.Response(status=204) if deleted else _not_found()


def add_api_routes(app: web.Application) -> None:
    base = "/public/v1/documents"
    app.router.add_get(base, list_documents)
    app.router.add_post(base, create_document)
    app.router.add_get(base + "/{id}", document_status)
    app.router.add_delete(base + "/{id}", delete_document)
    app.router.add_get(base + "/{id}/details", document_details)
    app.router.add_get(base + "/{id}/download", download_document)
