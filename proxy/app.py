"""``create_app()``: the routes, the request middleware and the resources of one proxy replica.

Resources live in ``cleanup_ctx`` generators, one per resource, so aiohttp opens them at
start-up and closes them in reverse order at shutdown, collecting every error on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from .admin import add_admin_routes
from .config import Config
from .errors import NotFound
from .expect import expect_handler
from .forward import NO_AUTO_HEADERS, Forwarder, PassThroughRequest, forward
from .keys import (
    CLIENT_SESSION,
    CONFIG,
    FORWARDER,
    METRICS,
    REPLICA_ID,
    TOKENS,
)
from .metrics import ProxyMetrics
from .middleware import request_middleware
from .tokens import RedisTokenStore, TokenStore
from .tokens.manager import TokenManager
from .tokens.refresher import Refresher

__all__ = ["create_app", "new_replica_id"]


def new_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def create_app(
    config: Config, *, store: TokenStore | None = None, replica_id: str | None = None
) -> web.Application:
    """Build one replica. Without ``store``, tokens live in the Redis named by the config."""
    app = web.Application(
        middlewares=[request_middleware],
        # Bodies are streamed and counted by the forwarder; this only guards read()/post().
        client_max_size=config.limits.max_body_bytes,
        handler_args={
            "max_field_size": 16 * 1024,
            "max_line_size": 16 * 1024,
            # Request bodies pass through as sent: aiohttp would otherwise gunzip a body sent
            # with Content-Encoding: gzip and forward the plain bytes under that same header.
            "auto_decompress": False,
            # aiohttp arms this timer when a connection opens and after every answer, and
            # closes the connection if no complete request head has arrived when it fires:
            # the header-read deadline (aiohttp has no other).
            "keepalive_timeout": config.limits.header_timeout_s,
        },
    )
    app[CONFIG] = config
    app[REPLICA_ID] = replica_id or new_replica_id()
    app[METRICS] = ProxyMetrics.create()
    app.cleanup_ctx.append(_client_session_ctx)
    app.cleanup_ctx.append(_token_store_ctx(store))
    app.cleanup_ctx.append(_proactive_refresh_ctx)

    add_admin_routes(app)
    app.router.add_route("*", "/_proxy/{tail:.*}", _not_found, expect_handler=expect_handler)
    app.router.add_route("*", "/{tail:.*}", forward, expect_handler=expect_handler)
    return app


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise NotFound(f"The proxy has no route {request.path}.")


async def _client_session_ctx(app: web.Application) -> AsyncIterator[None]:
    upstream = app[CONFIG].upstream
    connector = aiohttp.TCPConnector(limit=upstream.max_connections, ttl_dns_cache=300)
    session = aiohttp.ClientSession(
        connector=connector,
        # One session serves every client: a shared cookie jar would hand one client's
        # cookies to the next, so the proxy keeps none.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Bodies pass through encoded, exactly as PandaDoc sent them.
        auto_decompress=False,
        # The proxy adds none of these of its own (contract 4); see PassThroughRequest.
        skip_auto_headers=NO_AUTO_HEADERS,
        request_class=PassThroughRequest,
        # No sock_read: the forwarder's own deadlines bound the wait for headers and each
        # wait for a body chunk (forward.py), without a timer re-armed on every packet.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=upstream.connect_timeout_s),
        trust_env=False,
    )
    app[CLIENT_SESSION] = session
    yield
    await session.close()


def _token_store_ctx(
    given: TokenStore | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def token_store_ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        store = given or RedisTokenStore.from_config(config)
        metrics = app[METRICS]
        refresher = Refresher(
            store,
            app[CLIENT_SESSION],
            config.oauth,
            config.tokens,
            owner=app[REPLICA_ID],
            on_outcome=lambda outcome, trigger: metrics.refreshes.labels(outcome, trigger).inc(),
            on_lock_wait=metrics.lock_wait_seconds.observe,
        )
        app[TOKENS] = TokenManager(
            store,
            refresher,
            cache_s=config.redis.token_cache_s,
            on_store_error=metrics.redis_errors.inc,
        )
        metrics.watch_tokens(lambda: app[TOKENS].held)
        app[FORWARDER] = Forwarder(config, app[CLIENT_SESSION], app[TOKENS], metrics)
        yield
        await app[TOKENS].close()
        if given is None:
            await store.close()

    return token_store_ctx


async def _proactive_refresh_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keeps the token fresh ahead of its expiry, also when no requests come."""
    if app[CONFIG].auth.mode == "api_key":
        yield
        return
    task = asyncio.create_task(app[TOKENS].keep_fresh(), name="proactive-refresh")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
