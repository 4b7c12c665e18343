"""The errors the proxy itself answers with (contract section 6), rendered in one place.

Every error is a :class:`ProxyError` subclass that knows its status and contract code. Code
anywhere below a handler raises one; :func:`answer_error` (called by the request middleware,
``middleware.py``) turns it into the JSON body
``{"error": CODE, "message": TEXT}`` with the ``X-Proxy-Error: CODE`` header, so a client can
tell the proxy's own answers from PandaDoc's. Messages are written for people and never carry a
token or a secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from .keys import EXCHANGE, METRICS, REQUEST_ID_HEADER

__all__ = [
    "AdminAuthenticationRequired",
    "AuthorizationRequired",
    "BadRequest",
    "BodyTooLarge",
    "ExpectationFailed",
    "Forbidden",
    "NotFound",
    "Overloaded",
    "ProxyError",
    "RefreshCeilingReached",
    "RefreshFailed",
    "RequestTimeout",
    "TokenStoreUnavailable",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "answer_error",
    "answer_http_exception",
    "error_response",
]

log = logging.getLogger("pandadoc_proxy.errors")

PROXY_ERROR_HEADER = "X-Proxy-Error"


class ProxyError(Exception):
    """An answer the proxy gives on its own behalf instead of PandaDoc's."""

    status: int = 500
    code: str = "internal_error"
    #: Close the client's connection after the answer (its request was not read to the end).
    close_connection: bool = False
    default_message: str = "The proxy failed to handle the request."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        #: Headers the answer carries besides the JSON body (a challenge, say).
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadRequest(ProxyError):
    status = 400
    code = "bad_request"
    default_message = "The proxy refuses to forward this request."


class AdminAuthenticationRequired(ProxyError):
    status = 401
    code = "admin_authentication_required"
    default_message = "The proxy's admin pages need the admin username and password."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = 'Basic realm="pandadoc-proxy admin", charset="UTF-8"'


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"
    default_message = (
        "The proxy's admin pages answer only local requests unless admin.password is set."
    )


class NotFound(ProxyError):
    status = 404
    code = "not_found"
    default_message = "The proxy has no such route."


class RequestTimeout(ProxyError):
    status = 408
    code = "request_timeout"
    default_message = "The request body stopped arriving."
    close_connection = True


class BodyTooLarge(ProxyError):
    status = 413
    code = "body_too_large"
    default_message = "The request body is larger than the proxy accepts."


class ExpectationFailed(ProxyError):
    status = 417
    code = "expectation_failed"
    default_message = "The proxy meets no expectation but 100-continue."


class UpstreamUnreachable(ProxyError):
    status = 502
    code = "upstream_unreachable"
    default_message = "The proxy could not connect to PandaDoc."


class AuthorizationRequired(ProxyError):
    status = 503
    code = "authorization_required"
    default_message = (
        "The proxy has no usable PandaDoc token: an operator must connect it to PandaDoc."
    )

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, authorize_url="/_proxy/oauth/authorize")


class RefreshFailed(ProxyError):
    status = 503
    code = "refresh_failed"
    default_message = (
        "PandaDoc's token endpoint failed; the stored authorization is kept, try again shortly."
    )

    def __init__(self, message: str | None = None, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)


class RefreshCeilingReached(RefreshFailed):
    """A renewal refused because ``tokens.max_refreshes_per_minute`` were done this minute."""


class Overloaded(ProxyError):
    status = 503
    code = "overloaded"
    default_message = "The proxy is handling as many requests as it is allowed to; retry shortly."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = "1"


class TokenStoreUnavailable(ProxyError):
    status = 503
    code = "token_store_unavailable"
    default_message = "The token store (Redis) is unreachable and no token is held in memory."


class UpstreamTimeout(ProxyError):
    status = 504
    code = "upstream_timeout"
    default_message = "PandaDoc did not answer in time."


def error_response(error: ProxyError, request_id: str | None = None) -> web.Response:
    response = web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        content_type="application/json",
    )
    response.headers.update(error.headers)
    response.headers[PROXY_ERROR_HEADER] = error.code
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


async def answer_error(request: web.Request, error: ProxyError) -> web.StreamResponse:
    """The contract's JSON answer for ``error``; the only place that renders one."""
    request.app[METRICS].proxy_errors.labels(error.code).inc()
    if error.status >= 500:
        log.warning(
            "proxy error",
            extra={"event": "proxy_error", "code": error.code, "detail": error.message},
        )
    response = error_response(error, _request_id(request))
    if error.close_connection:
        # Sent now, then the connection is closed: aiohttp would otherwise keep reading
        # ("lingering") the rest of a body whose sender is the problem.
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
    return response


def answer_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals on the proxy's routes (405, say), in the same JSON shape."""
    code = exc.reason.lower().replace(" ", "_")
    return error_response(_HTTPError(exc.status, code, exc.reason), _request_id(request))


def _request_id(request: web.Request) -> str | None:
    exchange = request.get(EXCHANGE)
    return exchange.request_id if exchange is not None else None


class _HTTPError(ProxyError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
