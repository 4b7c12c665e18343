"""Liveness and readiness, for load balancers and orchestrators.

``/_proxy/health`` only says the process serves. ``/_proxy/ready`` says whether this replica can
do useful work: Redis answers and a usable token is stored. Neither ever shows a token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..keys import TOKENS
from ..tokens import TokenStoreError


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    tokens = request.app.get(TOKENS)
    if tokens is None:
        # API-key mode: nothing to look up, every request carries the configured key.
        return web.json_response(
            {
                "status": "ready",
                "redis": {"ok": True, "used": False},
                "token": {"ok": True, "mode": "api_key"},
            }
        )
    checks: dict[str, dict[str, Any]] = {}
    try:
        await tokens.ping()
        checks["redis"] = {"ok": True}
    except TokenStoreError as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}

    pair = tokens.held
    if checks["redis"]["ok"]:
        try:
            pair = await tokens.reload()
        except TokenStoreError as exc:
            checks["redis"] = {"ok": False, "error": str(exc)}
    if pair is None:
        checks["token"] = {"ok": False, "error": "no token stored: connect the proxy to PandaDoc"}
    elif not pair.usable:
        checks["token"] = {
            "ok": False,
            "error": f"authorization lost: {pair.authorization_lost}; connect the proxy again",
        }
    else:
        checks["token"] = {"ok": True, "version": pair.version, "expires_at": pair.expires_at}

    ok = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ok else "not_ready", **checks}
    return web.json_response(body, status=200 if ok else 503)
