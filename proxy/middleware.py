"""The one layer around every request, admin pages included.

In order: the request gets its id and is counted in flight; its target is checked before any
routing (``targets.py``); the handler runs; a :class:`~.errors.ProxyError` or an aiohttp
refusal raised anywhere below becomes the contract's JSON answer (``responses.py``); a client
that left before its answer was complete (:class:`~.exchange.ClientAborted`) is recorded as
status 499 with the bytes moved, not as an error; the answer carries the id, is counted by
status class and gets its access-log line (``logs.py``).

One middleware rather than one per concern: each aiohttp middleware layer is another coroutine
and another call per request, which on the proxy's hot path costs as much as the work inside.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import ProxyError
from .exchange import (
    CLIENT_CLOSED_REQUEST,
    EXCHANGE,
    REQUEST_ID_HEADER,
    Abort,
    ClientAborted,
    Exchange,
    forget_traceback,
)
from .keys import METRICS, REPLICA_ID
from .logs import log_access
from .responses import answer_error, answer_http_exception
from .targets import check_request

__all__ = ["request_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client's own request id is reused only if it is short and plain, so it cannot smuggle
# anything into logs or headers.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

# A random prefix per process and a counter: unique across replicas (64 random bits), and far
# cheaper per request than uuid4, which reads the OS's random source every time.
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):08x}"


def _client_gone() -> web.StreamResponse:
    """What the handler returns to aiohttp for a client that has left.

    Never sent: the connection is closed, so aiohttp's attempt to write it fails at once and
    takes its own quiet path for a premature disconnection (no traceback, nothing at ERROR),
    where raising would have it log an "Error handling request" traceback and count a 500.
    """
    response = web.Response(status=CLIENT_CLOSED_REQUEST)
    response.force_close()
    return response


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    client_id = request.headers.get(REQUEST_ID_HEADER)
    request_id = (
        client_id
        if client_id is not None and _CLIENT_REQUEST_ID.fullmatch(client_id)
        else _new_request_id()
    )
    request[EXCHANGE] = exchange = Exchange(request_id, time.perf_counter())
    app = request.app
    metrics = app[METRICS]
    counts = metrics.requests
    counts.in_flight += 1
    status = 500
    try:
        try:
            check_request(request)
            response = await handler(request)
        except ProxyError as error:
            response = await answer_error(request, error, metrics)
        except web.HTTPException as exc:
            if exc.status < 400:
                status = exc.status  # A redirect, raised rather than returned.
                raise
            response = answer_http_exception(request, exc)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except ClientAborted as aborted:
        status = CLIENT_CLOSED_REQUEST
        exchange.abort = Abort(aborted.phase, request.content.total_bytes, aborted.bytes_sent)
        return _client_gone()
    except ConnectionError as lost:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            raise  # Not the client's connection: a failure of the proxy's, a 500.
        # The client went away while the proxy was answering on its own behalf (an error, a
        # page); the forwarder reports the other cases itself, as ClientAborted.
        forget_traceback(lost)  # In case it is the one aiohttp keeps (see exchange.py).
        status = CLIENT_CLOSED_REQUEST
        exchange.abort = Abort("waiting", request.content.total_bytes, 0)
        return _client_gone()
    finally:
        counts.in_flight -= 1
        counts.count_request(request.method, status)
        # Here rather than in aiohttp's access-log hook: every fact is at hand, and a
        # streamed response is complete once the handler has returned.
        log_access(request.method, request.path, status, exchange, app[REPLICA_ID])
