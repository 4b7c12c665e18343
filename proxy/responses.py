"""The proxy's own answers: a :class:`~.errors.ProxyError` as the contract's JSON (section 6).

The one place that renders them: the request middleware (``middleware.py``) for everything a
handler raises, and the connection handler (``server.py``) for requests aiohttp's parser
refuses before any middleware runs.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from .errors import HTTPRefusal, ProxyError
from .exchange import EXCHANGE, REQUEST_ID_HEADER
from .metrics import ProxyMetrics

__all__ = ["PROXY_ERROR_HEADER", "answer_error", "answer_http_exception", "error_response"]

log = logging.getLogger("pandadoc_proxy.errors")

#: Tells a client that the answer is the proxy's own, not PandaDoc's, and which one.
PROXY_ERROR_HEADER = "X-Proxy-Error"


def error_response(error: ProxyError, request_id: str | None = None) -> web.Response:
    """``{"error": CODE, "message": TEXT, ...}`` with ``X-Proxy-Error: CODE``."""
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


async def answer_error(
    request: web.Request, error: ProxyError, metrics: ProxyMetrics
) -> web.StreamResponse:
    """The answer to a request that raised ``error``: counted, logged if the proxy is at
    fault (5xx), and closed after sending where the request was not read to its end."""
    metrics.proxy_errors.labels(error.code).inc()
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
    return error_response(HTTPRefusal(exc.status, code, exc.reason), _request_id(request))


def _request_id(request: web.Request) -> str | None:
    exchange = request.get(EXCHANGE)
    return exchange.request_id if exchange is not None else None
