"""Typed keys for application and request state, declared in one place.

``app[CONFIG]`` and ``request[REQUEST_ID]`` are then typed wherever they are read; aiohttp
warns about plain string keys for this reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .config import Config
    from .deadlines import Deadlines
    from .forward import ConcurrencyCap
    from .metrics import ProxyMetrics
    from .tokens.manager import TokenManager

__all__ = [
    "CLIENT_SESSION",
    "CONCURRENCY",
    "CONFIG",
    "DEADLINES",
    "METRICS",
    "REPLAYED",
    "REPLICA_ID",
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "STARTED",
    "TOKENS",
    "UPSTREAM_SECONDS",
]

REQUEST_ID_HEADER = "X-Request-Id"

CONFIG: web.AppKey[Config] = web.AppKey("config")
#: The pooled client session that talks to PandaDoc's API.
CLIENT_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("client_session")
TOKENS: web.AppKey[TokenManager] = web.AppKey("tokens")
CONCURRENCY: web.AppKey[ConcurrencyCap] = web.AppKey("concurrency")
METRICS: web.AppKey[ProxyMetrics] = web.AppKey("metrics")
#: The deadlines of requests waiting for PandaDoc's response headers.
DEADLINES: web.AppKey[Deadlines] = web.AppKey("deadlines")
#: Names this process in logs and in the token store ("who refreshed last").
REPLICA_ID: web.AppKey[str] = web.AppKey("replica_id", str)

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
#: When the request arrived (``time.perf_counter()``: uvloop's own clock ticks in whole
#: milliseconds, too coarse for a proxy's overhead).
STARTED: web.RequestKey[float] = web.RequestKey("started", float)
#: Seconds spent waiting for PandaDoc's response headers, summed over attempts.
UPSTREAM_SECONDS: web.RequestKey[float] = web.RequestKey("upstream_seconds", float)
#: Whether the request was sent again after PandaDoc rejected the token.
REPLAYED: web.RequestKey[bool] = web.RequestKey("replayed", bool)
