"""``/public/v1/templates``: list and details (the seeded templates), delete."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found
from ..validation import query_int
from .common import no_content, state
from .operations import Operation

__all__ = ["OPERATIONS"]


async def list_templates(request: web.Request) -> web.Response:
    """``GET /public/v1/templates``: filter (q, tag, folder_uuid, id), page (count, page)."""
    query = request.query
    count = query_int(query, "count", 50, 1, 100)
    page = query_int(query, "page", 1, 1, 1_000_000)
    found = state(request).templates.search(
        q=query.get("q") or None,
        tags=query.getall("tag", []),
        folder_uuid=query.get("folder_uuid") or None,
        template_id=query.get("id") or None,
    )
    window = found[(page - 1) * count : page * count]
    return web.json_response({"results": [template.list_item() for template in window]})


def _template_id(request: web.Request) -> str:
    return request.match_info["id"]


async def details_template(request: web.Request) -> web.Response:
    """``GET /public/v1/templates/{id}/details``: roles, fields, tokens of a template."""
    template = state(request).templates.get(_template_id(request))
    if template is None:
        raise not_found()
    return web.json_response(template.details_view())


async def delete_template(request: web.Request) -> web.Response:
    """``DELETE /public/v1/templates/{id}``: 204, then the id answers 404."""
    if not state(request).templates.delete(_template_id(request)):
        raise not_found()
    return no_content()


_BASE = "/public/v1/templates"

OPERATIONS = [
    Operation("listTemplates", "GET", _BASE, list_templates),
    Operation("detailsTemplate", "GET", _BASE + "/{id}/details", details_template, "details"),
    Operation("deleteTemplate", "DELETE", _BASE + "/{id}", delete_template),
]
