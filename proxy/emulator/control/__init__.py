"""``/_emulator`` control routes and the ``/`` index page.

They let a test, or a user running the emulator as a separate process in CI, steer the
emulator over HTTP: counters, tokens, settings (core), the request record, rate limits
and faults (traffic), documents and webhook deliveries (workspace). They carry no
authentication, as the emulator is a test double and never a real service.
"""

from __future__ import annotations

from aiohttp import web

from . import core, traffic, workspace

__all__ = ["add_control_routes"]


def add_control_routes(app: web.Application) -> None:
    core.add_routes(app)
    traffic.add_routes(app)
    workspace.add_routes(app)
