"""``/public/v1/documents/folders``: list (by parent), create, rename."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found
from ..validation import Invalid, query_int
from .common import json_fields, state
from .operations import Operation

__all__ = ["OPERATIONS"]


async def list_document_folders(request: web.Request) -> web.Response:
    """``GET /public/v1/documents/folders[?parent_uuid=...]``: folders below a parent (the
    root, which is not listed, by default)."""
    query = request.query
    count = query_int(query, "count", 50, 1, 100)
    page = query_int(query, "page", 1, 1, 1_000_000)
    folders = state(request).folders
    found = folders.children(query.get("parent_uuid") or None)
    window = found[(page - 1) * count : page * count]
    return web.json_response({"results": [folders.list_view(folder) for folder in window]})


async def create_document_folder(request: web.Request) -> web.Response:
    """``POST /public/v1/documents/folders``: a new folder (201), below ``parent_uuid``."""
    fields = await json_fields(request)
    name = fields.string("name", required=True, blank=False)
    parent_uuid = fields.string("parent_uuid", nullable=True, blank=False)
    fields.done()
    folders = state(request).folders
    if parent_uuid is not None and folders.get(parent_uuid) is None:
        raise Invalid({"parent_uuid": ["Folder not found."]})
    folder = folders.create(name or "", parent_uuid)
    return web.json_response(folder.short_view(), status=201)


async def rename_document_folder(request: web.Request) -> web.Response:
    """``PUT /public/v1/documents/folders/{id}``: a new name."""
    folder = state(request).folders.get(request.match_info["id"])
    if folder is None:
        raise not_found()
    fields = await json_fields(request)
    name = fields.string("name", required=True, blank=False)
    fields.done()
    folder.name = name or folder.name
    return web.json_response(folder.short_view())


_BASE = "/public/v1/documents/folders"

OPERATIONS = [
    Operation("listDocumentFolders", "GET", _BASE, list_document_folders),
    Operation(
        "createDocumentFolder",
        "POST",
        _BASE,
        create_document_folder,
        invalid_type="validation_error",
    ),
    Operation(
        "renameDocumentFolder",
        "PUT",
        _BASE + "/{id}",
        rename_document_folder,
        invalid_type="validation_error",
    ),
]
