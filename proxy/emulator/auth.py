"""The API's credential check, shared by ``/public/v1`` and ``/test`` routes.

The test routes carry the same check as the real API so that a proxy under
test must inject a valid token on every path, and so that every 401 it
provokes is counted in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from .state import EMULATOR_STATE, AuthOutcome

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The wording PandaDoc's API (a Django REST framework service) uses.
_DETAILS = {
    AuthOutcome.MISSING: "Authentication credentials were not provided.",
    AuthOutcome.INVALID: "Invalid token.",
    AuthOutcome.EXPIRED: "Token expired.",
}


def api_error(status: int, error_type: str, detail: object) -> web.Response:
    """PandaDoc's error body: ``{"type": ..., "detail": ...}``."""
    return web.json_response({"type": error_type, "detail": detail}, status=status)


def unauthorized(outcome: AuthOutcome, status: int = 401) -> web.Response:
    """The answer to a refused credential: 401 with the challenge RFC 7235 requires, or the
    403 with the same body that PandaDoc also documents."""
    response = api_error(status, "authentication_error", _DETAILS[outcome])
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def require_auth(handler: Handler) -> Handler:
    """Wrap a route so it only runs for a valid bearer token (or API key).

    Counts every request reaching the route in ``api_requests``, and in
    ``unauthorized_responses`` every refused credential (401, or 403 when so
    configured) and every 401 a handler answers itself (``/test/status/401``).
    """

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        state = request.app[EMULATOR_STATE]
        state.api_requests += 1
        outcome = state.authenticate(request.headers.get("Authorization"))
        if outcome is AuthOutcome.OK:
            response: web.StreamResponse = await handler(request)
        else:
            response = unauthorized(outcome, state.settings.rejected_token_status)
        if response.status == 401 or outcome is not AuthOutcome.OK:
            state.unauthorized_responses += 1
        return response

    return checked
