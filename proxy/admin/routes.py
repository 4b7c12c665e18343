"""Registers everything under the reserved ``/_proxy/`` prefix."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from ..expect import expect_handler
from .connect import authorize, callback
from .health import health, ready
from .metrics import metrics
from .protection import admin_only
from .status_page import status_page


def add_admin_routes(app: web.Application) -> None:
    # Expect headers as on every route (expect.py).
    add_get = partial(app.router.add_get, expect_handler=expect_handler)
    # For everyone who can reach the listener: load balancers, orchestrators, Prometheus.
    add_get("/_proxy/health", health)
    add_get("/_proxy/ready", ready)
    add_get("/_proxy/metrics", metrics)
    # For operators only (see protection.py).
    add_get("/_proxy/", admin_only(status_page))
    add_get("/_proxy/oauth/authorize", admin_only(authorize))
    add_get("/_proxy/oauth/callback", admin_only(callback))
