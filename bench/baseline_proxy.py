"""The benchmark's baseline: the simplest correct aiohttp reverse proxy, on uvloop.

One ``ClientSession`` (no cookies kept, bodies passed through encoded), the request body
streamed up, the response body streamed back in 64 KiB chunks, hop-by-hop headers
(RFC 9110 section 7.6.1) dropped both ways and ``Host`` left to the client session. No token
logic, no request ids, no metrics, no access log: it is the floor that any aiohttp proxy
pays, against which ``pandadoc-proxy`` is measured.

    python bench/baseline_proxy.py --port 8092 --upstream http://127.0.0.1:8091
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
CHUNK = 64 * 1024


def end_to_end(headers: CIMultiDictProxy[str], *, drop: frozenset[str]) -> CIMultiDict[str]:
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
    }
    dropped = drop | named
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


async def handle(request: web.Request) -> web.StreamResponse:
    url = URL(request.app[UPSTREAM] + request.raw_path, encoded=True)
    headers = end_to_end(request.headers, drop=HOP_BY_HOP | {"host"})
    try:
        upstream = await request.app[SESSION].request(
            request.method,
            url,
            headers=headers,
            data=request.content if request.body_exists else None,
            allow_redirects=False,
        )
    except aiohttp.ClientError:
        return web.Response(status=502, text="upstream unreachable")
    try:
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=end_to_end(upstream.headers, drop=HOP_BY_HOP),
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        upstream.release()


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )
    yield
    await app[SESSION].close()


def create_baseline_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    runner = web.AppRunner(create_baseline_app(upstream), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8091")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
