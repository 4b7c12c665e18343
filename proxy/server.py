"""Running an app in the foreground until SIGTERM or SIGINT, with a clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .errors import BadRequest, BodyTooLarge, ProxyError, error_response
from .exchange import Exchange
from .keys import CONFIG
from .logs import ACCESS_LOGGER, AccessLogger, log_access

__all__ = ["ListenError", "ProxyAppRunner", "run", "serve_until_stopped", "start_site"]

log = logging.getLogger("pandadoc_proxy.server")


class _ContractErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering unparsable requests as the contract says.

    aiohttp's HTTP parser refuses malformed requests (smuggling attempts, bad chunk sizes,
    control characters, over-long lines) before any middleware runs, and answers with a
    plain-text 400 that echoes part of the input, after logging a full traceback at ERROR. Here
    the answer is the contract's JSON error with ``X-Proxy-Error``, echoing nothing, and the
    log is one line: a client that sends garbage must not be able to flood the logs.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        reason = type(exc).__name__ if exc is not None else "malformed request"
        log.info("malformed request refused", extra={"event": "bad_request", "detail": reason})
        error: ProxyError
        if status == 413:
            error = BodyTooLarge()
        else:
            error = BadRequest(f"The request is not valid HTTP/1.1 ({reason}).")
            error.status = status
        response = error_response(error)
        response.force_close()
        # Such a request never reaches the request middleware, which writes the others' lines.
        log_access(request.method, request.path, error.status, Exchange("", perf_counter()), "")
        return response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        limit = getattr(self._manager, "max_connections", 0)
        if limit and self._manager is not None and len(self._manager.connections) > limit:
            # Over the cap: a clear answer, then the door closes. Nothing has been read.
            assert isinstance(transport, asyncio.Transport)
            transport.write(_TOO_MANY_CONNECTIONS)
            transport.close()
            log.warning("connection refused: at the cap", extra={"event": "connection_cap"})


_TOO_MANY_BODY = (
    b'{"error": "overloaded", "message": "The proxy has as many connections open as it is '
    b'allowed to; retry shortly."}'
)
_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"X-Proxy-Error: overloaded\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_TOO_MANY_BODY)).encode() + b"\r\n\r\n" + _TOO_MANY_BODY
)


class _ContractErrorServer(web.Server):
    #: Open client connections allowed at once (0: no cap); set by ProxyAppRunner.
    max_connections: int = 0

    def __call__(self) -> RequestHandler:
        return _ContractErrorHandler(self, loop=self._loop, **self._kwargs)


class ProxyAppRunner(web.AppRunner):
    """aiohttp's ``AppRunner``, whose connections answer unparsable requests with the
    contract's JSON error (see :class:`_ContractErrorHandler`) and are capped in number
    (``limits.max_connections``)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); only the connection
        # handler it creates differs, so the instance takes the subclass that creates ours.
        server.__class__ = _ContractErrorServer
        config = self.app.get(CONFIG)
        if config is not None:
            server.max_connections = config.limits.max_connections  # type: ignore[attr-defined]
        return server


class ListenError(Exception):
    """The listener could not be opened (a port already in use, say)."""


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    access_log: bool = True,
    drain_timeout_s: float = 30.0,
    runner_class: type[web.AppRunner] = ProxyAppRunner,
    reuse_port: bool = False,
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the port actually bound (for port 0).

    At cleanup the runner stops accepting connections, then gives requests in flight up to
    ``drain_timeout_s`` to finish. ``access_log`` turns on aiohttp's access-log hook, for apps
    that do not log their own requests (the proxy's app does, in its request middleware).
    """
    runner = runner_class(
        app,
        access_log_class=AccessLogger,
        access_log=logging.getLogger(ACCESS_LOGGER) if access_log else None,
        shutdown_timeout=drain_timeout_s,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


async def serve_until_stopped(
    started: Callable[[], Awaitable[list[web.AppRunner]]],
) -> None:
    """Start the runners, wait for SIGTERM/SIGINT, then clean them up in reverse order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runners = await started()
    _settle_garbage_collector()
    try:
        await stop.wait()
        log.info("shutting down", extra={"event": "shutdown"})
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _settle_garbage_collector() -> None:
    """Once serving: move everything start-up created out of the collector's sight.

    The modules, the app and its pools live as long as the process; with ``gc.freeze()`` the
    collector's full passes stop walking them again and again (about 20 ms each here), which
    showed up as p99 latency. The per-request garbage is young and mostly freed by reference
    counting; a higher first threshold lets more of it die before a collection looks at it.

    The price: a collection runs only after 10,000 more container objects were allocated than
    freed, which a request freed by reference counting never adds to. Garbage in a reference
    cycle then stays for a long time, and with it anything it holds: an aborted upload's
    cycle held its buffered body (``exchange.forget_traceback``), and 200 aborts took RSS from
    57 to 187 MB. So no request may leave a cycle; ``tests/test_memory.py`` checks every kind.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every POSIX platform
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
