"""``GET /_proxy/metrics``: the Prometheus text exposition of this replica's metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..keys import METRICS


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    # Set whole: the exposition format's type carries a version parameter.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
