"""``GET /_proxy/metrics``: the Prometheus text exposition of this replica's metrics.

Under ``serve --workers N`` the replica is N processes and a scrape reaches one of them: it
answers for all of them (metrics_merge.py). Otherwise the registry is exposed as it is.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..keys import METRICS
from ..metrics_merge import METRICS_SHARING


async def metrics(request: web.Request) -> web.Response:
    sharing = request.app.get(METRICS_SHARING)
    if sharing is not None:
        body = sharing.exposition()
    else:
        body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    # Set whole: the exposition format's type carries a version parameter.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
