"""Typed keys for the state of one replica's app, that its layers share.

``app[CONFIG]`` is then typed wherever it is read; aiohttp warns about plain string keys for
this reason. A key private to one module lives there (``forward.FORWARDER``), and the request's
own record with its class (``exchange.EXCHANGE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .config import Config
    from .credentials import Credentials
    from .metrics import ProxyMetrics
    from .tokens.manager import TokenManager

__all__ = [
    "CLIENT_SESSION",
    "CONFIG",
    "CREDENTIALS",
    "METRICS",
    "REPLICA_ID",
    "TOKENS",
]

CONFIG: web.AppKey[Config] = web.AppKey("config")
#: The pooled client session that talks to PandaDoc's API.
CLIENT_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("client_session")
#: How forwarded requests are authorized (credentials.py): an API key or the OAuth pair.
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
#: The OAuth pair's owner; absent in API-key mode, which has no token store.
TOKENS: web.AppKey[TokenManager] = web.AppKey("tokens")
METRICS: web.AppKey[ProxyMetrics] = web.AppKey("metrics")
#: Names this process in logs and in the token store ("who refreshed last").
REPLICA_ID: web.AppKey[str] = web.AppKey("replica_id", str)
