"""The ``/test`` routes: an upstream with known, checkable behaviour for proxy tests."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from collections.abc import AsyncIterator

from proxy.emulator import EmulatorState
from proxy.emulator.testing import GZIP_BODY, GZIP_JSON, download_bytes_sha256, download_chunks

from .emulator_helpers import Client, fetch

# ---- the /test routes ---------------------------------------------------------------


async def test_the_test_routes_require_a_token(client: Client, state: EmulatorState) -> None:
    assert (await fetch(client, "GET", "/test/echo"))[0] == 401
    assert state.unauthorized_responses == 1


async def test_echo_reports_the_raw_path_the_headers_in_order_and_the_body_hash(
    client: Client, auth: dict[str, str]
) -> None:
    headers = [*auth.items(), ("X-Twice", "1"), ("x-other", "é"), ("X-Twice", "2")]
    status, body, _ = await fetch(
        client, "PATCH", "/test/echo/a%2Fb/c?x=1&x=%20", headers=headers, data=b"payload"
    )
    assert status == 200
    assert body["method"] == "PATCH"
    assert body["raw_path"] == "/test/echo/a%2Fb/c?x=1&x=%20"
    received = [tuple(pair) for pair in body["headers"]]
    ours = [pair for pair in received if pair[0].lower() in ("x-twice", "x-other")]
    assert ours == [("X-Twice", "1"), ("x-other", "é".encode().decode("latin-1")), ("X-Twice", "2")]
    assert body["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert body["body_length"] == 7


async def test_download_streams_the_requested_size_with_the_expected_hash(
    client: Client, auth: dict[str, str]
) -> None:
    size = 3 * 65536 + 123
    async with client.get("/test/download", params={"size": size}, headers=auth) as response:
        assert response.headers["Content-Length"] == str(size)
        digest, length = hashlib.sha256(), 0
        async for chunk in response.content.iter_chunked(65536):
            digest.update(chunk)
            length += len(chunk)
    assert length == size
    assert digest.hexdigest() == download_bytes_sha256(size)


def test_the_download_pattern_never_repeats_a_chunk() -> None:
    chunks = [bytes(chunk) for chunk in download_chunks(40 * 65536)]
    assert len(set(chunks)) == len(chunks) == 40
    assert download_bytes_sha256(0) == hashlib.sha256(b"").hexdigest()


async def test_upload_answers_the_hash_and_length_of_a_streamed_body(
    client: Client, auth: dict[str, str]
) -> None:
    parts = [bytes([i]) * 100_000 for i in range(5)]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    status, answer, _ = await fetch(client, "PUT", "/test/upload", data=body(), headers=auth)
    assert status == 200
    assert answer == {"sha256": hashlib.sha256(b"".join(parts)).hexdigest(), "length": 500_000}


async def test_slow_sends_nothing_before_the_delay(client: Client, auth: dict[str, str]) -> None:
    started = time.monotonic()
    async with client.get("/test/slow", params={"delay": "0.2"}, headers=auth) as response:
        headers_after = time.monotonic() - started
        await response.read()
    assert headers_after >= 0.2


async def test_slow_body_sends_headers_at_once_then_spaced_chunks(
    client: Client, auth: dict[str, str]
) -> None:
    started = time.monotonic()
    params = {"chunks": "2", "interval": "0.25"}
    async with client.get("/test/slow-body", params=params, headers=auth) as response:
        headers_after = time.monotonic() - started
        body = await response.read()
    assert headers_after < 0.25
    assert time.monotonic() - started >= 0.5
    assert body == b"chunk 0\nchunk 1\n"


async def test_status_answers_the_requested_status_and_location(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, response = await fetch(
        client,
        "GET",
        "/test/status/307",
        params={"location": "/test/echo"},
        headers=auth,
        allow_redirects=False,
    )
    assert (status, body) == (307, {"status": 307})
    assert response.headers["Location"] == "/test/echo"
    status, body, _ = await fetch(client, "GET", "/test/status/204", headers=auth)
    assert (status, body) == (204, b"")


async def test_cookies_come_as_two_separate_set_cookie_headers(
    client: Client, auth: dict[str, str]
) -> None:
    _, _, response = await fetch(client, "GET", "/test/cookies", headers=auth)
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


async def test_gzip_sends_precompressed_bytes_with_their_length(
    client: Client, auth: dict[str, str]
) -> None:
    async with client.get("/test/gzip", headers=auth, auto_decompress=False) as response:
        raw = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(GZIP_BODY))
    assert raw == GZIP_BODY
    assert json.loads(gzip.decompress(raw)) == GZIP_JSON


async def test_hop_by_hop_headers_reach_the_socket_as_written(
    client: Client, auth: dict[str, str]
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"GET /test/hop-by-hop HTTP/1.1\r\nHost: emulator\r\n"
            + f"Authorization: {auth['Authorization']}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert head[0] == "HTTP/1.1 200 OK"
    assert {"Connection: X-Hop-Custom", "X-Hop-Custom: 1", "Keep-Alive: timeout=5"} <= set(head)
    assert "X-End-To-End: 1" in head
