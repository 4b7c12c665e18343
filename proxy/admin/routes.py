"""Registers everything under the reserved ``/_proxy/`` prefix."""

from __future__ import annotations

from aiohttp import web

from .connect import authorize, callback
from .health import health, ready
from .metrics import metrics
from .protection import admin_only
from .status_page import status_page


def add_admin_routes(app: web.Application) -> None:
    # For everyone who can reach the listener: load balancers, orchestrators, Prometheus.
    app.router.add_get("/_proxy/health", health)
    app.router.add_get("/_proxy/ready", ready)
    app.router.add_get("/_proxy/metrics", metrics)
    # For operators only (see protection.py).
    app.router.add_get("/_proxy/", admin_only(status_page))
    app.router.add_get("/_proxy/oauth/authorize", admin_only(authorize))
    app.router.add_get("/_proxy/oauth/callback", admin_only(callback))
