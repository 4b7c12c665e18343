"""The API's credential check, shared by ``/public/v1`` and ``/test`` routes.

The test routes carry the same check as the real API so that a proxy under
test must inject a valid token on every path, and so that every 401 it
provokes is counted in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import ApiError
from .state import EMULATOR_STATE, AuthOutcome

__all__ = ["api_error", "refused_credentials", "require_auth", "unauthorized"]

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


def unauthorized(outcome: AuthOutcome, status: int = 401) -> ApiError:
    """The answer to a refused credential: 401 with the challenge RFC 7235 requires, or the
    403 with the same body that PandaDoc also documents."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ApiError(status, "authentication_error", _DETAILS[outcome], headers=headers)


def refused_credentials(request: web.Request) -> web.Response | None:
    """The refusal of the request's credentials, or None when they are good.

    Counts every request in ``api_requests`` and every refusal in
    ``unauthorized_responses``.
    """
    state = request.app[EMULATOR_STATE]
    state.api_requests += 1
    outcome = state.authenticate(request.headers.get("Authorization"))
    if outcome is AuthOutcome.OK:
        return None
    state.unauthorized_responses += 1
    return unauthorized(outcome, state.settings.rejected_token_status).response(request.path)


def require_auth(handler: Handler) -> Handler:
    """Wrap a ``/test`` route so it only runs for a valid bearer token (or API key).

    Counts as ``refused_credentials`` does, and in ``unauthorized_responses`` also every
    401 the handler answers itself (``/test/status/401``).
    """

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        refused = refused_credentials(request)
        if refused is not None:
            return refused
        response = await handler(request)
        if response.status == 401:
            request.app[EMULATOR_STATE].unauthorized_responses += 1
        return response

    return checked
