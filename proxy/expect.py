"""The ``Expect`` request header (RFC 9110 section 10.1.1), decided before any body is read.

aiohttp calls a route's expect handler for a request that carries ``Expect``, after routing
and before the middleware. Its default sends ``100 Continue`` for every ``100-continue``, also
for a body the proxy is going to refuse, so the client uploads all of it to be told 413; and it
answers any other expectation with a plain-text 417. This one, on every route:

- ``100-continue`` with a ``Content-Length`` above ``limits.max_body_bytes``: 413
  ``body_too_large`` at once, with no ``100 Continue``, and the connection is closed: the
  client has not sent the body and need not send it (RFC 9110 lets a server answer with the
  final status instead of ``100 Continue``; closing is what keeps the unsent body from being
  read as the next request);
- any other expectation: 417 ``expectation_failed``, the only expectation the proxy meets
  being ``100-continue``;
- otherwise ``100 Continue``, as aiohttp's own handler sends it.

The refusals go through the request middleware like every answer, so they carry the
contract's JSON body, ``X-Proxy-Error`` and the request id, are counted and get an access
line. An HTTP/1.0 request's ``Expect`` is ignored: RFC 9110 says a server MUST ignore a
``100-continue`` in one, and HTTP/1.0 has no ``100 Continue`` to send.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, hdrs, web

from .errors import BodyTooLarge, ExpectationFailed, ProxyError
from .keys import CONFIG
from .middleware import Handler, request_middleware

__all__ = ["expect_handler"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """aiohttp's ``expect_handler`` of a route: None to go on, or the final answer."""
    if request.version != HttpVersion11:
        return None
    expectation = request.headers.get(hdrs.EXPECT, "")
    if expectation.lower() != "100-continue":
        return await _answer(request, ExpectationFailed(f"Unknown expectation: {expectation}."))
    limit = request.app[CONFIG].limits.max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        too_large = BodyTooLarge(f"The request body is larger than {limit} bytes.")
        too_large.close_connection = True
        return await _answer(request, too_large)
    await request.writer.write(_CONTINUE)
    # As aiohttp's own handler does: the answer proper has not started.
    request.writer.output_size = 0
    return None


async def _answer(request: web.Request, error: ProxyError) -> web.StreamResponse:
    return await request_middleware(request, _raising(error))


def _raising(error: ProxyError) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise error

    return refuse
