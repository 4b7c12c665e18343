"""Contract section 6: the answers the proxy gives on its own behalf, and when."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, MakeProxy, free_port, raw_exchange, wait_until

from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def assert_proxy_error(response: aiohttp.ClientResponse, status: int, code: str) -> None:
    assert response.status == status
    assert response.headers["X-Proxy-Error"] == code
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]


def parse_raw(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body) if body else None


# --- 400 bad_request ---------------------------------------------------------------------------


async def test_an_absolute_form_target_gets_400_and_reaches_no_upstream(
    proxy: Client, emulator: Emulator
) -> None:
    before = emulator.state.api_requests
    target = f"{emulator.url}/test/echo".encode()
    raw = await raw_exchange(
        proxy.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = parse_raw(raw)
    assert status == 400
    assert headers["x-proxy-error"] == "bad_request"
    assert body["error"] == "bad_request"
    assert emulator.state.api_requests == before


async def test_an_absolute_form_target_to_another_host_is_refused(proxy: Client) -> None:
    raw = await raw_exchange(
        proxy.port,
        b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert parse_raw(raw)[0] == 400


async def test_connect_gets_400(proxy: Client, emulator: Emulator) -> None:
    before = emulator.state.api_requests
    raw = await raw_exchange(
        proxy.port,
        b"CONNECT api.pandadoc.com:443 HTTP/1.1\r\nHost: api.pandadoc.com:443\r\n\r\n",
    )
    status, _headers, body = parse_raw(raw)
    assert status == 400
    assert body["error"] == "bad_request"
    assert emulator.state.api_requests == before


async def test_the_proxy_keeps_serving_after_a_refused_request(proxy: Client) -> None:
    await raw_exchange(proxy.port, b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await proxy.get("/public/v1/documents")).status == 200


async def test_an_unknown_proxy_route_is_a_json_404_and_not_forwarded(
    proxy: Client, emulator: Emulator
) -> None:
    before = emulator.state.api_requests
    await assert_proxy_error(await proxy.get("/_proxy/nope"), 404, "not_found")
    assert emulator.state.api_requests == before


# --- 413 body_too_large ------------------------------------------------------------------------


@pytest.fixture
async def small_limit_proxy(make_proxy: MakeProxy, connected: StoredPair) -> Client:
    return await make_proxy(limits={"max_body_bytes": 1000})


async def test_a_declared_body_over_the_limit_gets_413(
    small_limit_proxy: Client, emulator: Emulator
) -> None:
    before = emulator.state.api_requests
    response = await small_limit_proxy.post("/test/upload", data=b"x" * 1001)
    await assert_proxy_error(response, 413, "body_too_large")
    assert emulator.state.api_requests == before


async def test_a_chunked_body_over_the_limit_gets_413(
    small_limit_proxy: Client, emulator: Emulator
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    before = emulator.state.api_requests
    response = await small_limit_proxy.post("/test/upload", data=chunks())
    await assert_proxy_error(response, 413, "body_too_large")
    assert emulator.state.api_requests == before


async def test_a_body_exactly_at_the_limit_is_forwarded(small_limit_proxy: Client) -> None:
    response = await small_limit_proxy.post("/test/upload", data=b"z" * 1000)
    assert response.status == 200
    assert (await response.json())["length"] == 1000


# --- 502 / 504 ---------------------------------------------------------------------------------


async def test_an_unreachable_upstream_gets_502(
    make_proxy: MakeProxy, connected: StoredPair
) -> None:
    proxy = await make_proxy(upstream_url=f"http://127.0.0.1:{free_port()}")
    await assert_proxy_error(await proxy.get("/public/v1/documents"), 502, "upstream_unreachable")


async def test_an_upstream_slower_than_the_timeout_gets_504(
    make_proxy: MakeProxy, connected: StoredPair
) -> None:
    proxy = await make_proxy(upstream={"timeout_s": 0.3})
    await assert_proxy_error(await proxy.get("/test/slow?delay=3"), 504, "upstream_timeout")


async def test_a_streaming_body_keeps_flowing_beyond_the_header_timeout(
    make_proxy: MakeProxy, connected: StoredPair
) -> None:
    proxy = await make_proxy(upstream={"timeout_s": 0.5})
    # Six chunks 0.2 s apart: 1.2 s in all, more than twice the timeout, never idle that long.
    response = await proxy.get("/test/slow-body?chunks=6&interval=0.2")
    assert response.status == 200
    assert len(await response.read()) > 0


async def test_a_body_that_stalls_longer_than_the_timeout_is_cut_off(
    make_proxy: MakeProxy, connected: StoredPair
) -> None:
    proxy = await make_proxy(upstream={"timeout_s": 0.3})
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with proxy.session.get(proxy.make_url("/test/slow-body?chunks=3&interval=3")) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    # Cut by the proxy's idle deadline, long before PandaDoc's next chunk (3 s).
    assert loop.time() - started < 2


async def test_a_client_slower_than_the_timeout_still_gets_the_whole_body(
    make_proxy: MakeProxy, connected: StoredPair
) -> None:
    """Back-pressure is not a stalled upstream: while the client takes its time, the proxy
    stops reading PandaDoc, and no idle deadline may run meanwhile."""
    proxy = await make_proxy(upstream={"timeout_s": 0.3})
    size = 50_000_000  # Far more than the socket buffers on the way can hold.
    async with proxy.session.get(proxy.make_url(f"/test/download?size={size}")) as response:
        assert response.status == 200
        await asyncio.sleep(1.0)  # Not reading: everything on the way fills up and waits.
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
    assert received == size


# --- 503 ---------------------------------------------------------------------------------------


async def test_without_a_stored_token_requests_get_503_authorization_required(
    make_proxy: MakeProxy, emulator: Emulator
) -> None:
    proxy = await make_proxy()
    response = await proxy.get("/public/v1/documents")
    await assert_proxy_error(response, 503, "authorization_required")
    assert (await response.json())["authorize_url"] == "/_proxy/oauth/authorize"
    assert emulator.state.api_requests == 0


async def test_with_redis_unreachable_and_no_token_held_requests_get_503(
    make_proxy: MakeProxy,
) -> None:
    proxy = await make_proxy(redis=f"redis://127.0.0.1:{free_port()}/0")
    await assert_proxy_error(
        await proxy.get("/public/v1/documents"), 503, "token_store_unavailable"
    )


# --- a broken upstream, byte by byte -----------------------------------------------------------


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """Start a TCP server that answers every request with the given bytes, then closes."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_headers_aiohttp_would_invent_are_not_added_to_relayed_responses(
    make_proxy: MakeProxy, raw_upstream: Any, connected: StoredPair
) -> None:
    url = await raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Only: this\r\n\r\nhello")
    proxy = await make_proxy(upstream_url=url)
    response = await proxy.get("/anything")
    assert await response.read() == b"hello"
    assert "Content-Type" not in response.headers
    assert "Server" not in response.headers
    assert "Date" not in response.headers
    assert response.headers["X-Only"] == "this"


async def test_an_upstream_that_dies_mid_body_truncates_the_clients_response(
    make_proxy: MakeProxy, raw_upstream: Any, connected: StoredPair
) -> None:
    url = await raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly-a-part")
    proxy = await make_proxy(upstream_url=url)
    response = await proxy.get("/download")
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    # ...and the proxy keeps serving.
    assert (await proxy.get("/_proxy/health")).status == 200


async def test_a_malformed_upstream_response_gets_502(
    make_proxy: MakeProxy, raw_upstream: Any, connected: StoredPair
) -> None:
    url = await raw_upstream(b"this is not HTTP\r\n\r\n")
    proxy = await make_proxy(upstream_url=url)
    await assert_proxy_error(await proxy.get("/x"), 502, "upstream_unreachable")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\npayload", id="a bare 101"),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
            b"\r\n\r\n\x81\x05hello",
            id="a 101 to websocket",
        ),
    ],
)
async def test_an_upstream_101_gets_502_as_the_proxy_asks_for_no_protocol_switch(
    make_proxy: MakeProxy, raw_upstream: Any, connected: StoredPair, answer: bytes
) -> None:
    """PandaDoc never switches protocols, and the proxy forwards no Upgrade: a 101 relayed
    would leave the client on a connection speaking nothing it asked for."""
    url = await raw_upstream(answer)
    proxy = await make_proxy(upstream_url=url)
    response = await proxy.get("/public/v1/documents", headers={"Upgrade": "websocket"})
    await assert_proxy_error(response, 502, "upstream_unreachable")
    assert "101" in (await response.json())["message"]
    assert (await proxy.get("/_proxy/health")).status == 200


# --- 503 overloaded ----------------------------------------------------------------------------


async def test_over_the_concurrency_cap_requests_get_503_overloaded_at_once(
    make_proxy: MakeProxy, emulator: Emulator, connected: StoredPair
) -> None:
    proxy = await make_proxy(limits={"max_concurrent_requests": 2})
    slow = [asyncio.ensure_future(proxy.get("/test/slow?delay=1")) for _ in range(2)]
    await wait_until(lambda: emulator.state.api_requests >= 2)  # both are in flight
    refused = await proxy.get("/public/v1/documents")
    await assert_proxy_error(refused, 503, "overloaded")
    assert refused.headers["Retry-After"] == "1"
    # The proxy's own routes still answer while it is saturated.
    assert (await proxy.get("/_proxy/health")).status == 200
    assert [r.status for r in await asyncio.gather(*slow)] == [200, 200]
    assert (await proxy.get("/public/v1/documents")).status == 200
