"""``/public/v1/contacts``: create, list (by email), get, update, delete."""

from __future__ import annotations

from aiohttp import web

from ..errors import not_found
from ..model.contacts import CONTACT_FIELDS, Contact
from ..validation import Fields
from .common import json_fields, no_content, state
from .operations import Operation

__all__ = ["OPERATIONS"]


def _values(fields: Fields) -> dict[str, str | None]:
    """The contact fields the body names: strings, null to clear, email well-formed."""
    values: dict[str, str | None] = {}
    for name in CONTACT_FIELDS:
        if not fields.present(name):
            continue
        if name == "email":
            values[name] = fields.email(name, nullable=True)
        else:
            values[name] = fields.string(name, nullable=True)
    fields.done()
    return values


def _contact(request: web.Request) -> Contact:
    contact = state(request).contacts.get(request.match_info["id"])
    if contact is None:
        raise not_found()
    return contact


async def list_contacts(request: web.Request) -> web.Response:
    """``GET /public/v1/contacts[?email=...]``: the workspace's contacts."""
    found = state(request).contacts.list(email=request.query.get("email") or None)
    return web.json_response({"results": [contact.view() for contact in found]})


async def create_contact(request: web.Request) -> web.Response:
    """``POST /public/v1/contacts``: a new contact (201)."""
    values = _values(await json_fields(request))
    contact = state(request).contacts.create(values)
    return web.json_response(contact.view(), status=201)


async def details_contact(request: web.Request) -> web.Response:
    """``GET /public/v1/contacts/{id}``: one contact."""
    return web.json_response(_contact(request).view())


async def update_contact(request: web.Request) -> web.Response:
    """``PATCH /public/v1/contacts/{id}``: change the fields the body names."""
    contact = _contact(request)
    values = _values(await json_fields(request))
    return web.json_response(state(request).contacts.update(contact, values).view())


async def delete_contact(request: web.Request) -> web.Response:
    """``DELETE /public/v1/contacts/{id}``: 204, then the id answers 404."""
    if not state(request).contacts.delete(_contact(request).id):
        raise not_found()
    return no_content()


_BASE = "/public/v1/contacts"
_CREATE_ERRORS = "validation_error"

OPERATIONS = [
    Operation("listContacts", "GET", _BASE, list_contacts),
    Operation("createContact", "POST", _BASE, create_contact, invalid_type=_CREATE_ERRORS),
    Operation("detailsContact", "GET", _BASE + "/{id}", details_contact),
    Operation(
        "updateContact", "PATCH", _BASE + "/{id}", update_contact, invalid_type=_CREATE_ERRORS
    ),
    Operation("deleteContact", "DELETE", _BASE + "/{id}", delete_contact),
]
