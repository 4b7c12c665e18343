"""The layers around every request: the record, PandaDoc-shaped errors, injected faults.

Order, outermost first: ``record_requests`` (so a request answered by a fault or an
error is recorded too), ``render_errors`` (errors.py), ``inject_faults``. The control
routes under ``/_emulator/`` are neither recorded nor subject to faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from .api.operations import operation_id
from .errors import ApiError
from .faults import reset_connection, take_fault
from .ratelimit import throttle_error
from .record import RECORD
from .state import EMULATOR_STATE

__all__ = ["inject_faults", "record_requests"]

CONTROL_PREFIX = "/_emulator/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The error ``type`` PandaDoc sends with each status an injected fault may answer.
_FAULT_TYPES = {
    400: "request_error",
    401: "authentication_error",
    403: "permissions_error",
    404: "not_found",
    409: "conflict",
    429: "throttled",
}


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = request.app[EMULATOR_STATE]
    state.requests.resize(state.settings.request_record_size)
    record = state.requests.add(request)
    record.operation = operation_id(request)
    request[RECORD] = record
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect raised by a handler
        record.status = exc.status
        raise
    transport = request.transport
    # A reset connection got no answer at all, whatever the handler returned.
    record.status = None if transport is None or transport.is_closing() else response.status
    return response


def _fault_error(status: int) -> ApiError:
    if status >= 500:
        return ApiError(status, "server_error", "A server error occurred.")
    return ApiError(status, _FAULT_TYPES.get(status, "request_error"), "Injected fault.")


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the first fault rule that matches the request (faults.py)."""
    state = request.app[EMULATOR_STATE]
    faults = state.settings.faults
    if not faults or request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    fault = take_fault(faults, request.method, request.path, operation_id(request))
    if fault is None:
        return await handler(request)
    if fault.kind == "latency":
        await asyncio.sleep(fault.value or 0.0)
        return await handler(request)
    if fault.kind == "reset":
        reset_connection(request)
        return web.Response(status=500)  # never sent: the connection is gone
    if fault.kind == "throttle":
        state.throttled_responses += 1
        limits = state.settings.rate_limits
        raise throttle_error(limits, fault.value if fault.value is not None else limits.window_s)
    raise _fault_error(int(fault.value or 500))
