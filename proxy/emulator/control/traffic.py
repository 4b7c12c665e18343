"""Control routes for traffic: the request record, rate limits and fault rules.

``GET /_emulator/requests`` lists what reached the emulator, oldest first, with its
arrival time (``at``: wall clock, ``monotonic``: the emulator's clock), method, raw path,
headers, PandaDoc operationId, the user it counted against and the status it got;
``?since=SEQ`` gives only later ones (each record has a ``seq``), ``method``,
``path_prefix`` and ``operation`` filter. ``DELETE`` forgets them.
"""

from __future__ import annotations

from aiohttp import web

from ..faults import Fault, FaultError
from ..settings import SettingsError, changed_rate_limits, settings_as_dict
from ..state import EMULATOR_STATE
from .core import bad_request, json_object

__all__ = ["add_routes"]


async def get_requests(request: web.Request) -> web.Response:
    """``GET /_emulator/requests``: the record of requests received (see the module doc)."""
    state = request.app[EMULATOR_STATE]
    query = request.query
    since = query.get("since", "0")
    if not since.isdigit():
        return bad_request("since must be a record's seq (a whole number)")
    records = state.requests.select(
        since_seq=int(since),
        method=query.get("method") or None,
        path_prefix=query.get("path_prefix") or None,
        operation=query.get("operation") or None,
    )
    return web.json_response(
        {"last_seq": state.requests.last_seq, "requests": [r.as_json() for r in records]}
    )


async def clear_requests(request: web.Request) -> web.Response:
    """``DELETE /_emulator/requests``: forget the record (``seq`` keeps counting)."""
    request.app[EMULATOR_STATE].requests.clear()
    return web.Response(status=204)


def _rate_limits(request: web.Request) -> dict[str, object]:
    state = request.app[EMULATOR_STATE]
    limits = state.settings.rate_limits
    section = settings_as_dict(state.settings)["rate_limits"]
    assert isinstance(section, dict)
    return {**section, "usage": state.limiter.usage(state.clock(), limits.window_s)}


async def get_rate_limits(request: web.Request) -> web.Response:
    """``GET /_emulator/rate-limits``: the rate-limit settings and each user's current use."""
    return web.json_response(_rate_limits(request))


async def patch_rate_limits(request: web.Request) -> web.Response:
    """``PATCH /_emulator/rate-limits``: change some of them (``{"enabled": true}``...)."""
    state = request.app[EMULATOR_STATE]
    changes = await json_object(request)
    if isinstance(changes, web.Response):
        return changes
    try:
        state.settings.rate_limits = changed_rate_limits(state.settings.rate_limits, changes, "")
    except SettingsError as exc:
        return bad_request(str(exc))
    return web.json_response(_rate_limits(request))


async def reset_rate_limits(request: web.Request) -> web.Response:
    """``DELETE /_emulator/rate-limits``: forget every window's count (settings stay)."""
    request.app[EMULATOR_STATE].limiter.reset()
    return web.Response(status=204)


def _faults(request: web.Request) -> web.Response:
    faults = request.app[EMULATOR_STATE].settings.faults
    return web.json_response({"faults": [fault.as_json() for fault in faults]})


async def get_faults(request: web.Request) -> web.Response:
    """``GET /_emulator/faults``: the fault rules in force, in the order they are tried."""
    return _faults(request)


async def add_fault(request: web.Request) -> web.Response:
    """``POST /_emulator/faults``: add a rule (``{"match", "kind", "value", "times"}``)."""
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        fault = Fault.from_json(body)
    except FaultError as exc:
        return bad_request(str(exc))
    request.app[EMULATOR_STATE].settings.faults.append(fault)
    return _faults(request)


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_emulator/faults``: remove every rule."""
    request.app[EMULATOR_STATE].settings.faults.clear()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/requests", get_requests)
    app.router.add_delete("/_emulator/requests", clear_requests)
    app.router.add_get("/_emulator/rate-limits", get_rate_limits)
    app.router.add_patch("/_emulator/rate-limits", patch_rate_limits)
    app.router.add_delete("/_emulator/rate-limits", reset_rate_limits)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
