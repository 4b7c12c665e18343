"""Contract section 4: what the proxy sends to PandaDoc, and what it hands back."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, proxy_config, raw_exchange
from yarl import URL

from proxy import create_app
from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key.lower() == name.lower()]


async def echo(
    proxy: Client, method: str = "GET", raw_target: str = "/test/echo", **kw: Any
) -> Any:
    """Send ``raw_target`` exactly as written (no re-quoting) and return the emulator's echo."""
    url = URL(f"http://{proxy.host}:{proxy.port}{raw_target}", encoded=True)
    async with proxy.session.request(method, url, **kw) as response:
        assert response.status == 200, await response.text()
        return await response.json()


# --- the token ---------------------------------------------------------------------------------


async def test_requests_reach_pandadoc_with_the_stored_bearer_token(
    proxy: Client, connected: StoredPair
) -> None:
    seen = await echo(proxy)
    assert header_values(seen, "Authorization") == [f"Bearer {connected.access_token}"]


async def test_the_clients_own_authorization_header_is_replaced(
    proxy: Client, connected: StoredPair
) -> None:
    seen = await echo(proxy, headers={"Authorization": "API-Key client-guess"})
    assert header_values(seen, "Authorization") == [f"Bearer {connected.access_token}"]


async def test_proxy_authorization_from_the_client_is_dropped(proxy: Client) -> None:
    seen = await echo(proxy, headers={"Proxy-Authorization": "Basic dXNlcjpwdw=="})
    assert header_values(seen, "Proxy-Authorization") == []


async def test_documents_list_comes_back_from_pandadoc_through_the_proxy(
    proxy: Client, emulator: Emulator
) -> None:
    before = emulator.state.api_requests
    response = await proxy.get("/public/v1/documents")
    assert response.status == 200
    assert isinstance((await response.json())["results"], list)
    assert emulator.state.api_requests == before + 1


async def test_a_pair_stored_by_another_replica_is_used_once_the_cache_lapses(
    aiohttp_client: Callable[..., Awaitable[Client]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    connected: StoredPair,
    store: Any,
) -> None:
    config = proxy_config(emulator.url, redis_url, key_prefix, redis={"token_cache_s": 0})
    proxy = await aiohttp_client(create_app(config))
    assert header_values(await echo(proxy), "Authorization") == [f"Bearer {connected.access_token}"]
    from proxy.tokens import NewTokens

    newer = NewTokens.from_token_response(emulator.state.issue_pair())
    await store.save(newer, expected_version=connected.version, obtained_by="other-replica")
    assert header_values(await echo(proxy), "Authorization") == [f"Bearer {newer.access_token}"]


# --- path and query ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/test/echo/a%2Fb/%7Euser/caf%C3%A9",
        "/test/echo?x=1&x=2&y=%2F&z=a+b&empty=&=v&x=3",
        "/test/echo/%27quoted%27?q=%22a%22%3Ab&sort=-date_created",
        "/test/echo//double//slashes/",
        "/test/echo/with%20space/and%25percent?a=%E2%9C%93",
    ],
)
async def test_path_and_query_reach_pandadoc_byte_for_byte(proxy: Client, target: str) -> None:
    seen = await echo(proxy, raw_target=target)
    assert seen["raw_path"] == target


# --- headers -----------------------------------------------------------------------------------


async def test_hop_by_hop_request_headers_are_not_forwarded(proxy: Client) -> None:
    seen = await echo(
        proxy,
        headers={
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret-to-this-hop",
            "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "X-End-To-End": "kept",
        },
    )
    names = {name.lower() for name, _ in seen["headers"]}
    for hop in ("connection", "x-private-hop", "keep-alive", "proxy-connection", "te", "trailer"):
        assert hop not in names
    assert header_values(seen, "X-End-To-End") == ["kept"]


async def test_connection_cannot_remove_the_headers_the_proxy_sets(
    proxy: Client, connected: StoredPair
) -> None:
    seen = await echo(
        proxy,
        headers={"Connection": "Authorization, X-Request-Id, Host", "X-Request-Id": "abc-123"},
    )
    assert header_values(seen, "Authorization") == [f"Bearer {connected.access_token}"]
    assert header_values(seen, "X-Request-Id") == ["abc-123"]
    assert len(header_values(seen, "Host")) == 1


async def test_host_is_the_upstreams(proxy: Client, emulator: Emulator) -> None:
    seen = await echo(proxy, headers={"Host": "proxy.internal:8080"})
    assert header_values(seen, "Host") == [URL(emulator.url).raw_authority]


async def test_repeated_request_headers_pass_in_order(proxy: Client) -> None:
    headers = [("X-Tag", "one"), ("X-Tag", "two"), ("X-Tag", "three")]
    seen = await echo(proxy, headers=headers)
    assert header_values(seen, "X-Tag") == ["one", "two", "three"]


async def test_the_proxy_adds_no_headers_of_its_own_beyond_host_token_and_request_id(
    proxy: Client,
) -> None:
    # A raw request, so no client library adds User-Agent or Accept-Encoding on the way in.
    raw = await raw_exchange(
        proxy.port, b"GET /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    names = sorted(name.lower() for name, _ in seen["headers"])
    assert names == ["authorization", "host", "x-request-id"]


async def test_a_request_id_is_generated_sent_upstream_and_returned(proxy: Client) -> None:
    url = URL(f"http://{proxy.host}:{proxy.port}/test/echo")
    async with proxy.session.get(url) as response:
        seen = await response.json()
        returned = response.headers.getall("X-Request-Id")
    assert len(returned) == 1
    assert header_values(seen, "X-Request-Id") == returned


async def test_the_clients_request_id_is_kept(proxy: Client) -> None:
    response = await proxy.get("/test/echo", headers={"X-Request-Id": "trace-42"})
    assert response.headers.getall("X-Request-Id") == ["trace-42"]
    assert header_values(await response.json(), "X-Request-Id") == ["trace-42"]


async def test_a_request_id_that_could_inject_into_logs_is_replaced(proxy: Client) -> None:
    response = await proxy.get("/test/echo", headers={"X-Request-Id": "x" * 500})
    assert response.headers["X-Request-Id"] != "x" * 500


async def test_hop_by_hop_response_headers_are_not_relayed(proxy: Client) -> None:
    response = await proxy.get("/test/hop-by-hop")
    assert response.status == 200
    assert "X-Hop-Custom" not in response.headers
    assert "Keep-Alive" not in response.headers
    assert response.headers["X-End-To-End"] == "1"


async def test_repeated_set_cookie_headers_reach_the_client(proxy: Client) -> None:
    response = await proxy.get("/test/cookies")
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


async def test_cookies_set_for_one_client_are_never_sent_for_another(proxy: Client) -> None:
    await proxy.get("/test/cookies")
    # A different client (no cookie jar of the test's own involved).
    raw = await raw_exchange(
        proxy.port, b"GET /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert header_values(seen, "Cookie") == []


# --- bodies ------------------------------------------------------------------------------------


async def test_compressed_responses_pass_through_undecoded(proxy: Client) -> None:
    url = URL(f"http://{proxy.host}:{proxy.port}/test/gzip")
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers={"Accept-Encoding": "gzip"}) as response,
    ):
        raw = await response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert int(response.headers["Content-Length"]) == len(raw)
    assert json.loads(gzip.decompress(raw))


@pytest.mark.parametrize("size", [0, 1, 1000, 3 * 1024 * 1024])
async def test_request_bodies_arrive_intact(proxy: Client, size: int) -> None:
    body = os.urandom(size)
    response = await proxy.post("/test/upload", data=io.BytesIO(body))
    assert response.status == 200
    assert await response.json() == {
        "sha256": hashlib.sha256(body).hexdigest(),
        "length": size,
    }


async def test_a_chunked_request_body_is_sent_upstream_with_its_length(proxy: Client) -> None:
    parts = [os.urandom(1000) for _ in range(5)]

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    seen = await echo(proxy, "POST", data=chunks())
    assert seen["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert header_values(seen, "Content-Length") == ["5000"]
    assert header_values(seen, "Transfer-Encoding") == []


async def test_a_large_download_streams_through_intact(proxy: Client) -> None:
    from proxy.emulator.testing import download_bytes_sha256

    size = 20 * 1024 * 1024 + 7
    digest = hashlib.sha256()
    async with proxy.session.get(
        URL(f"http://{proxy.host}:{proxy.port}/test/download?size={size}")
    ) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(65536):
            digest.update(chunk)
    assert digest.hexdigest() == download_bytes_sha256(size)


async def test_head_responses_carry_no_body(proxy: Client) -> None:
    raw = await raw_exchange(
        proxy.port, b"HEAD /test/download?size=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""


# --- status codes ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 409, 422, 429, 500, 502, 503])
async def test_upstream_error_statuses_reach_the_client_unchanged(
    proxy: Client, status: int
) -> None:
    response = await proxy.get(f"/test/status/{status}")
    assert response.status == status
    assert "X-Proxy-Error" not in response.headers
    assert await response.json() == {"status": status}


async def test_redirects_are_passed_to_the_client_not_followed(proxy: Client) -> None:
    response = await proxy.get(
        "/test/status/302?location=https://app.pandadoc.com/elsewhere", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == "https://app.pandadoc.com/elsewhere"
