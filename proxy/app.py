"""``create_app()``: the routes, the request middleware and the resources of one proxy replica.

Resources live in ``cleanup_ctx`` generators, one per resource, so aiohttp opens them at
start-up and closes them in reverse order at shutdown, collecting every error on the way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from .admin import add_admin_routes
from .config import Config
from .credentials import ApiKeyCredentials, BearerCredentials, Credentials
from .errors import NotFound
from .expect import expect_handler
from .forward import FORWARDER, NO_AUTO_HEADERS, Forwarder, PassThroughRequest, forward
from .keys import (
    CLIENT_SESSION,
    CONFIG,
    CREDENTIALS,
    METRICS,
    REPLICA_ID,
    TOKENS,
)
from .metrics import ProxyMetrics
from .middleware import request_middleware
from .tokens import RedisTokenStore, TokenStore
from .tokens.manager import TokenManager

__all__ = ["create_app", "new_replica_id"]

log = logging.getLogger("pandadoc_proxy.app")


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
    app.cleanup_ctx.append(_credentials_ctx(store))

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


def _credentials_ctx(
    given: TokenStore | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def credentials_ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        metrics = app[METRICS]
        session = app[CLIENT_SESSION]
        if config.auth.mode == "api_key":
            # PandaDoc's fixed key: no token store, no refresh, no Redis at all.
            credentials: Credentials = ApiKeyCredentials(config.auth.api_key)
            metrics.watch_credentials(credentials.state)
            app[CREDENTIALS] = credentials
            app[FORWARDER] = Forwarder(config, session, credentials, metrics)
            yield
            return
        store = given or RedisTokenStore.from_config(config, on_error=metrics.tokens.store_failed)
        tokens = TokenManager(
            store,
            session,
            config.oauth,
            config.tokens,
            owner=app[REPLICA_ID],
            cache_s=config.redis.token_cache_s,
            events=metrics.tokens,
        )
        bearer = BearerCredentials(
            tokens, refresh_on_403=config.tokens.refresh_on_403_authentication_error
        )
        metrics.watch_credentials(bearer.state, lambda: tokens.held, lambda: tokens.listening)
        app[TOKENS] = tokens
        app[CREDENTIALS] = bearer
        app[FORWARDER] = Forwarder(config, session, bearer, metrics)
        # Listening from start-up: a pair stored anywhere is used here at once.
        background = [
            asyncio.create_task(tokens.follow_notices(), name="token-notices"),
            asyncio.create_task(tokens.keep_fresh(), name="proactive-refresh"),
        ]
        yield
        for task in background:
            task.cancel()
        _, stuck = await asyncio.wait(background, timeout=5.0)
        if stuck:  # Never seen; a shutdown must not hang on it. The store's close ends them.
            log.warning("background token tasks did not stop", extra={"event": "shutdown_slow"})
        # A new pair still being written gets the drain time to land (refresher.close).
        await tokens.close(grace_s=config.listen.drain_timeout_s)
        if given is None:
            await store.close()

    return credentials_ctx
