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
