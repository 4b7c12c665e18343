"""Running an app in the foreground until SIGTERM or SIGINT, with a clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from .logs import ACCESS_LOGGER, AccessLogger

__all__ = ["ListenError", "run", "serve_until_stopped", "start_site"]

log = logging.getLogger("pandadoc_proxy.server")


class ListenError(Exception):
    """The listener could not be opened (a port already in use, say)."""


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    access_log: bool = True,
    drain_timeout_s: float = 30.0,
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the port actually bound (for port 0).

    At cleanup the runner stops accepting connections, then gives requests in flight up to
    ``drain_timeout_s`` to finish.
    """
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=logging.getLogger(ACCESS_LOGGER) if access_log else None,
        shutdown_timeout=drain_timeout_s,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
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
    try:
        await stop.wait()
        log.info("shutting down", extra={"event": "shutdown"})
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every POSIX platform
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
