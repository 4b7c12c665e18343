"""Control routes for counters, tokens and settings, and the ``/`` index page."""

from __future__ import annotations

import html
import json
import re

from aiohttp import web

from ..api.operations import OPERATIONS
from ..settings import SettingsError, apply_settings_changes, settings_as_dict
from ..state import DEFAULT_SCOPE, EMULATOR_STATE


def bad_request(detail: str) -> web.Response:
    return web.json_response({"type": "request_error", "detail": detail}, status=400)


async def json_object(request: web.Request) -> dict[str, object] | web.Response:
    """The body as a JSON object, or the 400 to answer instead."""
    try:
        data = json.loads(await request.read() or b"null")
    except ValueError:
        return bad_request("The body must be a JSON object.")
    if not isinstance(data, dict):
        return bad_request("The body must be a JSON object.")
    return data


async def get_stats(request: web.Request) -> web.Response:
    """``GET /_emulator/stats``: every counter."""
    return web.json_response(request.app[EMULATOR_STATE].stats())


async def reset_stats(request: web.Request) -> web.Response:
    """``DELETE /_emulator/stats``: zero the counters between test cases."""
    request.app[EMULATOR_STATE].reset_stats()
    return web.Response(status=204)


async def issue_tokens(request: web.Request) -> web.Response:
    """``POST /_emulator/tokens[?scope=...]``: a fresh pair, as after a user's consent."""
    scope = request.query.get("scope") or DEFAULT_SCOPE
    return web.json_response(request.app[EMULATOR_STATE].issue_pair(scope))


async def expire_tokens(request: web.Request) -> web.Response:
    """``POST /_emulator/expire``: every access token issued so far answers 401."""
    request.app[EMULATOR_STATE].expire_access_tokens()
    return web.Response(status=204)


async def revoke_tokens(request: web.Request) -> web.Response:
    """``POST /_emulator/revoke``: every refresh token issued so far is refused."""
    request.app[EMULATOR_STATE].revoke_refresh_tokens()
    return web.Response(status=204)


async def fail_token_endpoint(request: web.Request) -> web.Response:
    """``POST /_emulator/fail-token-endpoint?times=N&status=S`` (S defaults to 500)."""
    state = request.app[EMULATOR_STATE]
    try:
        times = int(request.query.get("times", "1"))
        status = int(request.query.get("status", "500"))
        state.fail_token_endpoint(times, status)
    except ValueError as exc:
        return bad_request(str(exc))
    return web.json_response({"pending_token_failures": times, "status": status})


async def get_settings(request: web.Request) -> web.Response:
    """``GET /_emulator/settings``: the current settings."""
    return web.json_response(settings_as_dict(request.app[EMULATOR_STATE].settings))


async def patch_settings(request: web.Request) -> web.Response:
    """``PATCH /_emulator/settings``: change some settings; all or nothing."""
    settings = request.app[EMULATOR_STATE].settings
    changes = await json_object(request)
    if isinstance(changes, web.Response):
        return changes
    try:
        apply_settings_changes(settings, changes)
    except SettingsError as exc:
        return bad_request(str(exc))
    return web.json_response(settings_as_dict(settings))


def _summary(handler: object) -> str:
    """First docstring line of a handler, minus the route it names and RST quoting."""
    lines = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    summary = re.sub(r"^``[^`]*``[:.]?\s*", "", lines[0] if lines else "")
    return summary.replace("``", "")


async def index(request: web.Request) -> web.Response:
    """``GET /``: what this is, and every route, read from the router itself."""
    operations = request.app[OPERATIONS]
    rows = []
    for route in request.app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource else ""
        operation = operations.get(route)
        name = operation.operation_id if operation else ""
        rows.append(
            f"<tr><td><code>{html.escape(route.method)}</code></td>"
            f"<td><code>{html.escape(path)}</code></td>"
            f"<td><code>{html.escape(name)}</code></td>"
            f"<td>{html.escape(_summary(route.handler))}</td></tr>"
        )
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>PandaDoc emulator</title></head><body>\n"
        "<h1>PandaDoc emulator</h1>\n"
        "<p>An in-memory stand-in for PandaDoc's OAuth 2.0 server and public API v1,"
        " for tests and CI. Nothing here is real: tokens, documents and counters live"
        " in this process only.</p>\n"
        "<table>\n<tr><th>Method</th><th>Path</th><th>PandaDoc operation</th><th>What</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )
    return web.Response(text=page, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_delete("/_emulator/stats", reset_stats)
    app.router.add_post("/_emulator/tokens", issue_tokens)
    app.router.add_post("/_emulator/expire", expire_tokens)
    app.router.add_post("/_emulator/revoke", revoke_tokens)
    app.router.add_post("/_emulator/fail-token-endpoint", fail_token_endpoint)
    app.router.add_get("/_emulator/settings", get_settings)
    app.router.add_patch("/_emulator/settings", patch_settings)
