"""Small helpers the API handlers share."""

from __future__ import annotations

from aiohttp import web

from ..bodies import read_json
from ..errors import conflict, not_found
from ..model.documents import Document
from ..state import EMULATOR_STATE, EmulatorState
from ..validation import Fields

__all__ = ["document", "json_fields", "no_content", "origin", "processed", "state"]


def state(request: web.Request) -> EmulatorState:
    return request.app[EMULATOR_STATE]


def origin(request: web.Request) -> str:
    """The emulator's base URL as the client reached it (the proxy sends its upstream Host)."""
    return str(request.url.origin())


def document(request: web.Request, key: str = "id") -> Document:
    """The document the path names, brought up to date; else PandaDoc's 404."""
    doc = state(request).documents.get(request.match_info[key])
    if doc is None:
        raise not_found()
    return doc


async def json_fields(request: web.Request) -> Fields:
    """The JSON body (within PandaDoc's 2 MB), ready to be read field by field."""
    return Fields(await read_json(request))


def no_content() -> web.Response:
    return web.Response(status=204)


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
