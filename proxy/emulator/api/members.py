"""``/public/v1/members``: the workspace's members, and the one the credentials act for."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found
from ..model.members import MEMBERS, member_by_id
from .operations import Operation

__all__ = ["OPERATIONS"]


async def list_members(request: web.Request) -> web.Response:
    """``GET /public/v1/members``: every member of the workspace."""
    return web.json_response({"results": [dict(member) for member in MEMBERS]})


async def details_current_member(request: web.Request) -> web.Response:
    """``GET /public/v1/members/current``: the member the token or API key acts for."""
    return web.json_response(dict(MEMBERS[0]))


async def details_member(request: web.Request) -> web.Response:
    """``GET /public/v1/members/{id}``: one member, by membership id."""
    member = member_by_id(request.match_info["id"])
    if member is None:
        raise not_found()
    return web.json_response(dict(member))


_BASE = "/public/v1/members"

OPERATIONS = [
    Operation("listMembers", "GET", _BASE, list_members),
    # Before {id}: the router tries routes in the order they were added.
    Operation("detailsCurrentMember", "GET", _BASE + "/current", details_current_member),
    Operation("detailsMember", "GET", _BASE + "/{id}", details_member),
]
