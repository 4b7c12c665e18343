"""An in-memory emulator of PandaDoc's OAuth 2.0 server and public API v1.

It is the upstream of the proxy's own tests, and a feature for users: run it
in CI (``pandadoc-proxy emulator``) to exercise an integration without
touching PandaDoc. Besides the real routes it offers ``/test`` routes with
checkable behaviour and ``/_emulator`` routes to steer it.
"""

from .app import create_emulator_app
from .settings import EmulatorSettings
from .state import EMULATOR_STATE, EmulatorState

__all__ = ["EMULATOR_STATE", "EmulatorSettings", "EmulatorState", "create_emulator_app"]
