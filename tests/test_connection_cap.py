"""``limits.max_connections``: the cap on client connections, and the reserve kept for probes.

The in-process tests run on uvloop (what ``serve`` runs on) and on asyncio's own loop
(``every_loop``): the cap once did nothing on uvloop only, because its transport is no
``asyncio.Transport``. The last test runs ``serve`` itself.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.web_protocol import RequestHandler
from conftest import Emulator, MakeProxy, ProxyProcess, proxy_config, wait_until, write_config

from proxy import create_app
from proxy import server as server_module
from proxy.server import PROBE_PATHS, RESERVED_CONNECTIONS, ProxyAppRunner
from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]
#: Far longer than any wait below: an answer that comes is the cap's, not this timeout's.
HEADER_TIMEOUT_S = 120


def open_connections(proxy: Client) -> int:
    server = proxy.server.runner.server  # type: ignore[union-attr]
    assert server is not None
    return len(server.connections)


async def hold(proxy: Client, count: int) -> list[asyncio.StreamWriter]:
    """Open ``count`` idle connections and wait until the proxy has accepted them all."""
    before = open_connections(proxy)
    writers = [(await asyncio.open_connection("127.0.0.1", proxy.port))[1] for _ in range(count)]
    await wait_until(lambda: open_connections(proxy) == before + count)
    return writers


async def read_to_end(reader: asyncio.StreamReader, *, within_s: float = 10.0) -> bytes:
    """Everything until the proxy closes the connection."""
    async with asyncio.timeout(within_s):
        return await reader.read()


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split(" ")[1]), headers, json.loads(body) if body else None


def assert_overloaded(raw: bytes) -> None:
    status, headers, body = parse(raw)
    assert status == 503
    assert headers["x-proxy-error"] == "overloaded"
    assert headers["retry-after"] == "1"
    assert body["error"] == "overloaded"


@pytest.fixture
def capped(make_proxy: MakeProxy, connected: StoredPair) -> Any:
    async def make(cap: int) -> Client:
        return await make_proxy(
            limits={"max_connections": cap, "header_timeout_s": HEADER_TIMEOUT_S}
        )

    return make


@pytest.fixture
def reserve_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reserved connections that send nothing are cut after 2 s; tests that hold them open
    while they look at the next connection keep them longer, so that a slow machine does not
    free the reserve under the test's feet."""
    monkeypatch.setattr(server_module, "RESERVED_HEAD_TIMEOUT_S", HEADER_TIMEOUT_S)


@pytest.mark.every_loop
@pytest.mark.usefixtures("reserve_kept")
async def test_a_connection_over_the_cap_and_the_reserve_gets_503_overloaded_before_sending(
    capped: Any,
) -> None:
    proxy = await capped(2)
    held = await hold(proxy, 2 + RESERVED_CONNECTIONS)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        # Nothing sent: the answer comes as the connection opens, and the proxy closes it.
        assert_overloaded(await read_to_end(reader))
    finally:
        writer.close()
        for idle in held:
            idle.close()
    await wait_until(lambda: open_connections(proxy) == 0)


@pytest.mark.every_loop
@pytest.mark.parametrize("path", sorted(PROBE_PATHS))
async def test_probes_and_scrapes_answer_while_idle_connections_fill_the_cap(
    capped: Any, path: str
) -> None:
    proxy = await capped(3)
    held = await hold(proxy, 3)
    try:
        async with aiohttp.ClientSession() as session, session.get(proxy.make_url(path)) as got:
            assert got.status == 200
            # One request per reserved connection: the reserve is not a back door.
            assert got.headers["Connection"] == "close"
    finally:
        for idle in held:
            idle.close()


@pytest.mark.every_loop
async def test_a_request_to_forward_on_a_reserved_connection_gets_503_and_is_not_forwarded(
    capped: Any, emulator: Emulator
) -> None:
    proxy = await capped(2)
    held = await hold(proxy, 2)
    forwarded = emulator.state.api_requests
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /public/v1/documents HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_overloaded(await read_to_end(reader))
    finally:
        writer.close()
        for idle in held:
            idle.close()
    assert emulator.state.api_requests == forwarded


@pytest.mark.every_loop
async def test_a_silent_reserved_connection_is_closed_long_before_the_header_timeout(
    capped: Any,
) -> None:
    proxy = await capped(1)
    held = await hold(proxy, 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        # Closed with nothing said, after RESERVED_HEAD_TIMEOUT_S rather than 120 s.
        assert await read_to_end(reader, within_s=30) == b""
    finally:
        writer.close()
        for idle in held:
            idle.close()


@pytest.mark.every_loop
async def test_connections_under_the_cap_are_served_as_usual_once_others_close(
    capped: Any,
) -> None:
    proxy = await capped(2)
    for idle in await hold(proxy, 2):
        idle.close()
    await wait_until(lambda: open_connections(proxy) == 0)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # Keep-alive: one connection, several requests.
            async with session.get(proxy.make_url("/public/v1/documents")) as response:
                assert response.status == 200
                assert response.headers.get("Connection") != "close"


async def test_the_aiohttp_internals_the_connection_handler_relies_on_are_still_there(
    emulator: Emulator, redis_url: str, key_prefix: str
) -> None:
    """aiohttp offers no public way to choose the connection handler, nor to give one
    connection another request handler; if an upgrade renames what proxy/server.py uses,
    this says which name went, rather than the cap silently doing nothing."""
    assert hasattr(web.AppRunner, "_make_server"), "AppRunner._make_server is gone"
    assert "_request_handler" in RequestHandler.__slots__, "RequestHandler._request_handler"
    assert "_manager" in RequestHandler.__slots__, "RequestHandler._manager"
    runner = ProxyAppRunner(create_app(proxy_config(emulator.url, redis_url, key_prefix)))
    await runner.setup()
    try:
        server = runner.server
        assert server is not None
        # The swapped class is exactly one level below aiohttp's: no other Server subclass
        # whose state the swap would lose.
        assert type(server).__mro__[1] is web.Server
        assert isinstance(server._kwargs, dict), "Server._kwargs"
        handler = server()
        assert handler._manager is server
        assert handler._request_handler is server.request_handler
    finally:
        await runner.cleanup()


# --- serve, as shipped -------------------------------------------------------------------------


@pytest.mark.slow
async def test_serve_refuses_a_connection_over_the_cap_at_once_and_keeps_answering_health(
    tmp_path: Path, emulator: Emulator, redis_url: str, key_prefix: str, connected: StoredPair
) -> None:
    """The issue's trial: a cap of 3, three idle connections and more, on ``serve``'s uvloop."""
    config = proxy_config(
        emulator.url,
        redis_url,
        key_prefix,
        limits={"max_connections": 3, "header_timeout_s": HEADER_TIMEOUT_S},
    )
    replica = await ProxyProcess.start(write_config(tmp_path / "proxy.yaml", config))
    held: list[asyncio.StreamWriter] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                held.append((await asyncio.open_connection("127.0.0.1", replica.port))[1])
            await asyncio.sleep(0.2)  # Let the proxy accept them before the probe's.
            async with session.get(f"{replica.url}/_proxy/health") as health:
                assert health.status == 200  # A reserved connection.
            # More than the reserve, all silent: the reserved ones are closed after 2 s with
            # nothing said, the others get the 503 as they open.
            extra = [
                await asyncio.open_connection("127.0.0.1", replica.port)
                for _ in range(RESERVED_CONNECTIONS + 4)
            ]
            try:
                answers = await asyncio.gather(
                    *(read_to_end(reader, within_s=30) for reader, _ in extra)
                )
            finally:
                for _, writer in extra:
                    writer.close()
            refused = [answer for answer in answers if answer]
            assert refused, "no connection was refused"
            for answer in refused:
                assert_overloaded(answer)

            # The three under the cap are still held; health answers on the reserve.
            async def health_answers() -> bool:
                try:
                    async with session.get(f"{replica.url}/_proxy/health") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(health_answers, within_s=20)
    finally:
        for idle in held:
            idle.close()
        assert await replica.stop() == 0
    assert '"event":"connection_cap"' in replica.log_path.read_text().replace(" ", "")
