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
    from .credentials import Credentials
    from .exchange import Exchange
    from .forward import Forwarder
    from .metrics import ProxyMetrics
    from .tokens.manager import TokenManager

__all__ = [
    "CLIENT_SESSION",
    "CONFIG",
    "CREDENTIALS",
    "EXCHANGE",
    "FORWARDER",
    "METRICS",
    "REPLICA_ID",
    "REQUEST_ID_HEADER",
    "TOKENS",
]

REQUEST_ID_HEADER = "X-Request-Id"

CONFIG: web.AppKey[Config] = web.AppKey("config")
#: The pooled client session that talks to PandaDoc's API.
CLIENT_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("client_session")
#: How forwarded requests are authorized (credentials.py): an API key or the OAuth pair.
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
#: The OAuth pair's owner; absent in API-key mode, which has no token store.
TOKENS: web.AppKey[TokenManager] = web.AppKey("tokens")
#: Sends requests to PandaDoc (forward.py); created once the session and tokens exist.
FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder")
METRICS: web.AppKey[ProxyMetrics] = web.AppKey("metrics")
#: Names this process in logs and in the token store ("who refreshed last").
REPLICA_ID: web.AppKey[str] = web.AppKey("replica_id", str)

EXCHANGE: web.RequestKey[Exchange] = web.RequestKey("exchange")
