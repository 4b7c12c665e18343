"""Running an app in the foreground until SIGTERM or SIGINT, with a clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from types import FrameType
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .errors import BadRequest, BodyTooLarge, Overloaded, ProxyError
from .exchange import Exchange
from .keys import CONFIG
from .logs import ACCESS_LOGGER, AccessLogger, log_access
from .responses import error_response

__all__ = [
    "ListenError",
    "ProxyAppRunner",
    "catch_stop_signals",
    "run",
    "serve_until_stopped",
    "start_site",
    "stop_requested",
]

log = logging.getLogger("pandadoc_proxy.server")


class _ContractErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering unparsable requests as the contract says.

    aiohttp's HTTP parser refuses malformed requests (smuggling attempts, bad chunk sizes,
    control characters, over-long lines) before any middleware runs, and answers with a
    plain-text 400 that echoes part of the input, after logging a full traceback at ERROR. Here
    the answer is the contract's JSON error with ``X-Proxy-Error``, echoing nothing, and the
    log is one line: a client that sends garbage must not be able to flood the logs.

    It also applies ``limits.max_connections``: a connection over the cap gets the contract's
    503 ``overloaded`` as soon as it opens, except for the few kept for probes and scrapes
    (:data:`RESERVED_CONNECTIONS`).
    """

    #: False on a reserved connection until its request arrives.
    _probe_started = True

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
        manager = self._manager
        if not isinstance(manager, _ContractErrorServer) or not manager.max_connections:
            return
        open_now = len(manager.connections)  # This one included.
        if open_now <= manager.max_connections:
            return
        if open_now <= manager.max_connections + RESERVED_CONNECTIONS:
            # A reserved connection: one probe or scrape, anything else refused once its head
            # is read. aiohttp reads this private attribute anew for every request it reads
            # (tests/test_connection_cap.py fails loudly if that changes).
            self._request_handler = self._probe_only
            self._probe_started = False
            # A probe sends its request at once; one that stays silent is cut well before
            # limits.header_timeout_s, so idle connections cannot sit on the reserve.
            self._loop.call_later(RESERVED_HEAD_TIMEOUT_S, self._close_if_silent)
            return
        # Over the cap and the reserve: a clear answer, then the door closes. Nothing has been
        # read. Any transport a loop hands a protocol writes (uvloop's is no asyncio.Transport).
        cast(asyncio.WriteTransport, transport).write(_TOO_MANY_CONNECTIONS)
        transport.close()
        manager.refusals.note()

    async def _probe_only(self, request: web.BaseRequest) -> web.StreamResponse:
        """The request handler of a reserved connection (see :data:`RESERVED_CONNECTIONS`)."""
        self._probe_started = True
        manager = self._manager
        assert isinstance(manager, _ContractErrorServer)
        if request.method in ("GET", "HEAD") and request.path in PROBE_PATHS:
            response = await manager.request_handler(request)
        else:
            error = Overloaded(_TOO_MANY_MESSAGE)
            response = error_response(error)
            # Never reaches the request middleware, which writes the others' lines.
            log_access(request.method, request.path, error.status, Exchange("", perf_counter()), "")
            manager.refusals.note()
        response.force_close()  # The reserve is for one request at a time.
        return response

    def _close_if_silent(self) -> None:
        if not self._probe_started:
            self.force_close()


#: Connections beyond ``limits.max_connections`` kept for the proxy's own probes and scrapes:
#: ``GET /_proxy/health``, ``/_proxy/ready`` and ``/_proxy/metrics`` still answer when clients
#: hold every other connection (idle keep-alive pools, say), so a liveness probe never fails,
#: and gets the pod restarted, because the proxy is busy. A reserved connection serves one
#: such request and is closed; any other request on it gets the 503, and one that sends
#: nothing is closed after RESERVED_HEAD_TIMEOUT_S. A reserve rather than a second listener:
#: no new port for probes, Services and scrape configs to know about.
RESERVED_CONNECTIONS = 8
#: How long a reserved connection may take to send its request head.
RESERVED_HEAD_TIMEOUT_S = 2.0
PROBE_PATHS = frozenset({"/_proxy/health", "/_proxy/ready", "/_proxy/metrics"})

_TOO_MANY_MESSAGE = "The proxy has as many connections open as it is allowed to; retry shortly."
_TOO_MANY_BODY = json.dumps({"error": "overloaded", "message": _TOO_MANY_MESSAGE}).encode()
_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"X-Proxy-Error: overloaded\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_TOO_MANY_BODY)).encode() + b"\r\n\r\n" + _TOO_MANY_BODY
)


class _Refusals:
    """Counts connections refused at the cap, and says so in the log at most every 10 s: a
    client opening connections in a loop must not be able to flood the logs."""

    EVERY_S = 10.0

    def __init__(self) -> None:
        self.total = 0
        self._logged_total = 0
        self._logged_at = -self.EVERY_S

    def note(self) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self._logged_at >= self.EVERY_S:
            log.warning(
                "connections refused: at the cap (limits.max_connections)",
                extra={"event": "connection_cap", "refused": self.total - self._logged_total},
            )
            self._logged_at = now
            self._logged_total = self.total


class _ContractErrorServer(web.Server):
    #: Open client connections allowed at once (0: no cap); set by ProxyAppRunner.
    max_connections: int = 0
    refusals: _Refusals

    def __call__(self) -> RequestHandler:
        return _ContractErrorHandler(self, loop=self._loop, **self._kwargs)


class ProxyAppRunner(web.AppRunner):
    """aiohttp's ``AppRunner``, whose connections answer unparsable requests with the
    contract's JSON error (see :class:`_ContractErrorHandler`) and are capped in number
    (``limits.max_connections``, with a reserve for probes).

    aiohttp has no public way to choose the connection handler class: the one hook is the
    ``Server`` that ``AppRunner._make_server`` returns, whose ``__call__`` makes each handler.
    tests/test_connection_cap.py checks the private names this relies on, so an aiohttp
    upgrade that changes them fails there by name rather than quietly dropping the cap.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); only the connection
        # handler it creates differs, so the instance takes the subclass that creates ours.
        server.__class__ = _ContractErrorServer
        assert isinstance(server, _ContractErrorServer)
        server.refusals = _Refusals()
        config = self.app.get(CONFIG)
        if config is not None:
            server.max_connections = config.limits.max_connections
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


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: SIGTERM/SIGINT received before the event loop took them over (see catch_stop_signals).
_early_stops: list[int] = []


def catch_stop_signals() -> None:
    """From now until :func:`serve_until_stopped` takes them over, SIGTERM and SIGINT are
    noted rather than fatal: a stop asked for while the process is still starting (reading
    its configuration, connecting) becomes a clean shutdown, exit status 0, once it has
    started, instead of a death by signal. Call it first thing."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _note_stop)


def stop_requested() -> bool:
    """Whether a stop signal arrived since :func:`catch_stop_signals`."""
    return bool(_early_stops)


def _note_stop(signum: int, frame: FrameType | None) -> None:
    _early_stops.append(signum)


async def serve_until_stopped(
    started: Callable[[], Awaitable[list[web.AppRunner]]],
) -> None:
    """Start the runners, wait for SIGTERM/SIGINT, then clean them up in reverse order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    if stop_requested():  # Before the loop's handlers: noted by catch_stop_signals.
        stop.set()
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
