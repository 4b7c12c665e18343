"""The two private aiohttp hooks the forwarder still overrides, each checked so that an aiohttp
upgrade that renames one fails here, by name, instead of silently changing what the proxy
sends. (The third, the connection handler's, is checked in test_connection_cap.py.)

Both stay because the public way costs measurably on every request: ``skip_auto_headers`` on
the session instead of :class:`~proxy.forward.PassThroughRequest` measured 617,323 against
603,538 instructions per proxied GET (``bench/instructions.py``, +2.3 %); an
``on_response_prepare`` signal instead of :class:`~proxy.forward.RelayedResponse`'s
``_prepare_headers`` is a dispatch per response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.forward import NO_AUTO_HEADERS, PassThroughRequest, RelayedResponse


async def test_aiohttp_still_asks_the_request_class_which_auto_headers_to_skip(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    received: list[list[str]] = []

    async def record(request: web.Request) -> web.Response:
        received.append(list(request.headers))
        return web.Response()

    app = web.Application()
    app.router.add_get("/", record)
    server = await aiohttp_server(app)
    # No skip_auto_headers on the session: only PassThroughRequest keeps them out.
    async with (
        aiohttp.ClientSession(request_class=PassThroughRequest) as session,
        session.get(server.make_url("/")) as response,
    ):
        assert response.status == 200
    assert "update_auto_headers" in vars(aiohttp.ClientRequest), "ClientRequest hook renamed"
    added = {name.lower() for name in NO_AUTO_HEADERS} & {h.lower() for h in received[0]}
    assert added == set(), f"aiohttp added {added}: PassThroughRequest no longer applies"


def test_aiohttp_still_prepares_a_response_s_headers_in_prepare_headers() -> None:
    assert "_prepare_headers" in vars(web.StreamResponse), "StreamResponse hook renamed"
    assert "_prepare_headers" in vars(RelayedResponse)
