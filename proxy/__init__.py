"""pandadoc-proxy: an authenticating reverse proxy for the PandaDoc API.

Legacy apps send plain requests; the proxy adds ``Authorization: Bearer <token>`` from a token
pair shared by every replica through Redis, and streams PandaDoc's answer back unchanged.
"""

from .app import create_app
from .config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "create_app", "load_config"]
