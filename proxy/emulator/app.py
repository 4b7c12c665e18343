"""Assembly of the emulator application."""

from __future__ import annotations

from aiohttp import web

from .api import Operation, add_api_routes
from .api.operations import OPERATIONS
from .control import add_control_routes
from .errors import render_errors
from .lifecycle import document_lifecycle
from .middleware import inject_faults, record_requests
from .oauth import authorize_decision, authorize_page, token_endpoint
from .settings import EmulatorSettings
from .signing import add_signing_routes
from .state import EMULATOR_STATE, EmulatorState
from .testing import add_test_routes
from .webhook_delivery import webhook_delivery


def create_emulator_app(settings: EmulatorSettings | None = None) -> web.Application:
    """A fresh emulator: its own state, seeded workspace, all routes.

    ``settings`` is kept by reference (``app[EMULATOR_STATE].settings is
    settings``), so changing a field later changes the running emulator.
    """
    app = web.Application(middlewares=[record_requests, render_errors, inject_faults])
    app[EMULATOR_STATE] = EmulatorState(settings)
    app.cleanup_ctx.append(webhook_delivery)
    app.cleanup_ctx.append(document_lifecycle)
    app.router.add_get("/oauth2/authorize", authorize_page)
    app.router.add_post("/oauth2/authorize", authorize_decision)
    token_route = app.router.add_post("/oauth2/access_token", token_endpoint)
    # Named like PandaDoc's operation, for the record and fault rules; not rate limited.
    app[OPERATIONS] = {
        token_route: Operation("accessToken", "POST", "/oauth2/access_token", token_endpoint)
    }
    add_api_routes(app)
    add_signing_routes(app)
    add_test_routes(app)
    add_control_routes(app)
    return app
