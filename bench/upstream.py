"""The benchmark's upstream: a tiny, fast stand-in for PandaDoc (aiohttp on uvloop).

``GET /small`` answers 1 KiB, ``GET /big`` 1 MiB, ``POST /echo`` reads the whole body and
answers its length, ``GET /auth`` answers whether a bearer token came with the request (used by
the benchmark's sanity check only). Any bearer token, or none, is accepted everywhere.

    python bench/upstream.py --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from aiohttp import web

SMALL = b"s" * 1024
BIG = b"b" * (1024 * 1024)


async def small(request: web.Request) -> web.Response:
    return web.Response(body=SMALL, content_type="application/octet-stream")


async def big(request: web.Request) -> web.Response:
    return web.Response(body=BIG, content_type="application/octet-stream")


async def echo(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.Response(text=str(size))


async def auth(request: web.Request) -> web.Response:
    bearer = request.headers.get("Authorization", "").startswith("Bearer ")
    return web.Response(text="bearer" if bearer else "none")


def create_upstream_app() -> web.Application:
    app = web.Application(client_max_size=1024**3)
    app.router.add_get("/small", small)
    app.router.add_get("/big", big)
    app.router.add_post("/echo", echo)
    app.router.add_get("/auth", auth)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(create_upstream_app(), access_log=None)
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
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
