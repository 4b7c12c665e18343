"""Registers everything under the reserved ``/_proxy/`` prefix."""

from __future__ import annotations

from aiohttp import web

from .health import health, ready
from .metrics import metrics


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/_proxy/health", health)
    app.router.add_get("/_proxy/ready", ready)
    app.router.add_get("/_proxy/metrics", metrics)
