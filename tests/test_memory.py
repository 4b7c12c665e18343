"""Memory: streamed responses, and nothing left behind by a request, finished or aborted.

The start-up GC tuning (``proxy/server.py``) makes the cyclic garbage collector run rarely, so
what a request leaves in a reference cycle stays in memory for long: every kind of request
must be freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import ProxyProcess, ProxyTestServer, wait_until
from test_client_aborts import abort_an_upload, counted_4xx

from proxy import create_app
from proxy.config import Config
from proxy.emulator.testing import download_bytes_sha256
from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]
MiB = 1024 * 1024


@pytest.mark.slow
async def test_a_300_mb_download_grows_the_proxys_memory_by_less_than_64_mb(
    spawn_proxy: Callable[..., Awaitable[ProxyProcess]], config: Config, connected: StoredPair
) -> None:
    replica = await spawn_proxy(config)
    size = 300 * MiB
    async with aiohttp.ClientSession() as session:
        # Warm up (imports, pools, first allocations) before taking the baseline.
        async with session.get(f"{replica.url}/test/download?size={MiB}") as response:
            await response.read()
        baseline = replica.rss_peak_kib()
        digest = hashlib.sha256()
        received = 0
        async with session.get(f"{replica.url}/test/download?size={size}") as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
    growth_mib = (replica.rss_peak_kib() - baseline) / 1024
    assert received == size
    assert digest.hexdigest() == download_bytes_sha256(size)
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.1f} MiB"
    print(f"\n300 MB download through the proxy: peak RSS grew by {growth_mib:.1f} MiB")


@pytest.mark.slow
async def test_200_aborted_uploads_leave_the_memory_where_it_was(
    spawn_proxy: Callable[..., Awaitable[ProxyProcess]], config: Config, connected: StoredPair
) -> None:
    """Each declares 10 MiB, sends 5 MiB and half-closes. Before the fix, each left about
    0.65 MiB in a reference cycle, which the tuned collector did not get to: 57 -> 187 MiB."""
    replica = await spawn_proxy(config)
    for _ in range(3):  # first allocations, the spool file's code paths
        await abort_an_upload(replica.port)
    await counted_4xx(replica, 3)
    start_kib = replica.rss_kib()
    for _ in range(200):
        await abort_an_upload(replica.port)
    counts = await counted_4xx(replica, 203)
    growth_mib = (replica.rss_kib() - start_kib) / 1024
    print(f"\n200 aborted uploads: RSS {start_kib / 1024:.0f} MiB at the start, {growth_mib:+.1f}")
    assert "5xx" not in counts
    assert growth_mib < 20, f"RSS grew by {growth_mib:.1f} MiB"


async def _get(port: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/test/echo") as response,
    ):
        assert response.status == 200


async def _post(port: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/test/upload", data=io.BytesIO(b"b" * 2 * MiB)
        ) as response,
    ):
        assert response.status == 200


async def _abandon_a_download(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /test/download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (100 * MiB))
    await writer.drain()
    await reader.readexactly(MiB)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(_get, id="a proxied GET"),
        pytest.param(_post, id="a proxied POST with a body spooled to a file"),
        pytest.param(abort_an_upload, id="an upload the client aborts"),
        pytest.param(_abandon_a_download, id="a download the client abandons"),
    ],
)
async def test_a_request_is_freed_without_the_garbage_collector(
    aiohttp_client: Callable[..., Awaitable[Client]],
    config: Config,
    connected: StoredPair,
    send: Callable[[int], Awaitable[None]],
) -> None:
    """With the collector off, the request object must be gone once its handler is done."""
    seen: list[weakref.ref[web.Request]] = []

    @web.middleware
    async def remember(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(weakref.ref(request))
        response: web.StreamResponse = await handler(request)
        return response

    app = create_app(config)
    app.middlewares.insert(0, remember)
    proxy = await aiohttp_client(ProxyTestServer(app))
    await send(proxy.port)  # once first: imports, pools, first allocations
    gc.collect()
    gc.disable()
    try:
        await send(proxy.port)
        request = seen[-1]
        await wait_until(lambda: request() is None)
    finally:
        gc.enable()
