"""The proxy's own routes under ``/_proxy/``."""

from .routes import add_admin_routes

__all__ = ["add_admin_routes"]
