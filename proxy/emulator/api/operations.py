"""The emulated operations, each named by its operationId in PandaDoc's OpenAPI spec.

One table (``Operation`` per route, gathered in ``api/__init__.py``) drives the router,
the request record, fault rules, rate limits and the index page, so an operation is
declared once. Every operation runs behind the same steps, in PandaDoc's order (Django
REST framework's): authenticate, then throttle, then act; a handler only acts.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from ..auth import refused_credentials
from ..bodies import read_json
from ..errors import ApiError
from ..ratelimit import limit_for, throttle_error
from ..record import RECORD
from ..state import EMULATOR_STATE
from ..validation import Invalid

__all__ = ["OPERATIONS", "Operation", "add_operations", "operation_id", "operation_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One of PandaDoc's operations, as the emulator serves it.

    ``limit_class`` is the row of PandaDoc's rate limit table that counts it (None: the
    production preset does not limit it). ``invalid_type`` is the error ``type`` of a 400
    for wrong fields: PandaDoc's spec gives its create routes ``validation_error`` and the
    others ``request_error``.
    """

    operation_id: str
    method: str
    path: str
    handler: Handler
    limit_class: str | None = None
    invalid_type: str = "request_error"
    #: For one route that serves two operations (a JSON create and a PDF upload).
    upload_operation_id: str | None = None

    def id_for(self, request: web.BaseRequest) -> str:
        if self.upload_operation_id and request.content_type == "multipart/form-data":
            return self.upload_operation_id
        return self.operation_id

    async def limit_class_for(self, request: web.Request) -> str | None:
        """The rate-limit row, telling a PDF upload or URL from a template by the body."""
        if self.operation_id != "createDocument":
            return self.limit_class
        if request.content_type == "multipart/form-data":
            return "create_from_pdf"
        data = await read_json(request)
        is_template = isinstance(data, dict) and "template_uuid" in data
        return "create_from_template" if is_template else "create_from_pdf"


OPERATIONS: web.AppKey[dict[AbstractRoute, Operation]] = web.AppKey("emulator_operations", dict)


def operation_of(request: web.BaseRequest) -> Operation | None:
    """The operation the request was routed to, if it is one."""
    if not isinstance(request, web.Request):
        return None
    route = request.match_info.route
    return request.app[OPERATIONS].get(route) if OPERATIONS in request.app else None


def operation_id(request: web.BaseRequest) -> str | None:
    operation = operation_of(request)
    return None if operation is None else operation.id_for(request)


async def _throttle(request: web.Request, operation: Operation, owner: str) -> None:
    """Count the request against its user's window, or raise PandaDoc's 429."""
    state = request.app[EMULATOR_STATE]
    limits = state.settings.rate_limits
    if not limits.enabled:
        return
    op_id = operation.id_for(request)
    limit = limit_for(limits, op_id, await operation.limit_class_for(request))
    if limit is None:
        return
    wait = state.limiter.acquire((owner, op_id), limit, limits.window_s, state.clock())
    if wait > 0:
        state.throttled_responses += 1
        raise throttle_error(limits, wait)


def _guarded(operation: Operation) -> Handler:
    @functools.wraps(operation.handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[EMULATOR_STATE]
        refused = refused_credentials(request)
        if refused is not None:
            return refused
        owner = state.credential_owner(request.headers.get("Authorization")) or "unknown"
        if RECORD in request:
            request[RECORD].owner = owner
        await _throttle(request, operation, owner)
        try:
            return await operation.handler(request)
        except Invalid as exc:
            raise ApiError(400, operation.invalid_type, exc.errors) from None

    return handle


def add_operations(app: web.Application, operations: Sequence[Operation]) -> None:
    table = app[OPERATIONS]
    for operation in operations:
        handler = _guarded(operation)
        table[app.router.add_route(operation.method, operation.path, handler)] = operation
        if operation.method == "GET":  # as Django, which PandaDoc runs on, answers HEAD
            table[app.router.add_route("HEAD", operation.path, handler)] = operation
