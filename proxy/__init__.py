"""pandadoc-proxy: an authenticating reverse proxy for the PandaDoc API.

Legacy apps send plain requests; the proxy adds ``Authorization: Bearer <token>`` from a token
pair shared by every replica through Redis, and streams PandaDoc's answer back unchanged.

The public names are imported on first use (PEP 562), so that ``pandadoc-proxy --help`` and
``check-config`` do not load aiohttp, Redis and the server just to print a line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "create_app", "load_config"]

_HOME = {
    "create_app": ".app",
    "Config": ".config",
    "ConfigError": ".config",
    "load_config": ".config",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
