"""An in-memory emulator of PandaDoc's OAuth 2.0 server and public API v1.

It is the upstream of the proxy's own tests, and a feature for users: run it
in CI (``pandadoc-proxy emulator``) to exercise an integration without
touching PandaDoc (docs/emulator.md). Besides the real routes it offers ``/test``
routes with checkable behaviour and ``/_emulator`` routes to steer it.

Layout: ``api/`` the operations, one module per family; ``model/`` what the workspace
holds and its JSON shapes; ``control/`` the ``/_emulator`` routes; ``oauth`` the
authorization server; ``middleware``, ``errors``, ``bodies``, ``validation``,
``ratelimit``, ``faults``, ``record`` the layers every request goes through;
``lifecycle`` and ``webhook_delivery`` the app's background tasks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_emulator_app
    from .faults import Fault
    from .ratelimit import RateLimitSettings
    from .settings import EmulatorSettings
    from .state import EMULATOR_STATE, EmulatorState

__all__ = [
    "EMULATOR_STATE",
    "EmulatorSettings",
    "EmulatorState",
    "Fault",
    "RateLimitSettings",
    "create_emulator_app",
]

# Imported on first use (PEP 562): the command line reads the emulator's options module
# without loading the whole emulator.
_HOME = {
    "EMULATOR_STATE": ".state",
    "EmulatorSettings": ".settings",
    "EmulatorState": ".state",
    "Fault": ".faults",
    "RateLimitSettings": ".ratelimit",
    "create_emulator_app": ".app",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)
