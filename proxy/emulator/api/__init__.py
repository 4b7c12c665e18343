"""PandaDoc's public API, as far as the emulator serves it: one module per family.

``OPERATIONS`` lists them all, in the order the router must try them (fixed paths such
as ``/documents/folders`` before ``/documents/{id}``).
"""

from __future__ import annotations

from aiohttp import web

from . import (
    contacts,
    document_actions,
    document_create,
    document_parts,
    documents,
    folders,
    members,
    templates,
    webhooks,
)
from .operations import OPERATIONS as OPERATIONS_KEY
from .operations import Operation, add_operations

__all__ = ["OPERATIONS", "Operation", "add_api_routes"]

OPERATIONS: list[Operation] = [
    *folders.OPERATIONS,
    *documents.OPERATIONS,
    *document_create.OPERATIONS,
    *document_actions.OPERATIONS,
    *document_parts.OPERATIONS,
    *templates.OPERATIONS,
    *contacts.OPERATIONS,
    *members.OPERATIONS,
    *webhooks.OPERATIONS,
]


def add_api_routes(app: web.Application) -> None:
    if OPERATIONS_KEY not in app:
        app[OPERATIONS_KEY] = {}
    add_operations(app, OPERATIONS)
