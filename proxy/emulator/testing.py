"""``/test`` routes: an upstream with known, checkable behaviour for proxy tests.

Each route exposes one thing a reverse proxy can get wrong (header order,
streaming, slow upstreams, redirects, cookies, compression, hop-by-hop
headers). They sit behind the same credential check as the API, so a test
through the proxy also proves the token was injected.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
import math
from collections.abc import Iterator, Mapping

from aiohttp import ClientPayloadError, web

from .auth import require_auth

CHUNK_SIZE = 64 * 1024

#: The download pattern repeats every PATTERN_PERIOD bytes. The period is a
#: prime, so consecutive 64 KiB chunks all differ: a proxy that drops,
#: repeats or reorders chunks changes the hash, not just the length.
PATTERN_PERIOD = 65_521
_PATTERN = b"".join(
    hashlib.sha256(i.to_bytes(4, "big")).digest()
    for i in range(math.ceil((PATTERN_PERIOD + CHUNK_SIZE) / 32))
)[: PATTERN_PERIOD + CHUNK_SIZE]

#: The JSON document ``/test/gzip`` sends, and the exact gzip bytes it sends.
GZIP_JSON: dict[str, object] = {"compressed": True, "message": "hello from the emulator " * 8}
GZIP_BODY = gzip.compress(json.dumps(GZIP_JSON).encode(), mtime=0)


def download_chunks(size: int) -> Iterator[memoryview]:
    """The ``size`` bytes ``/test/download`` sends, as views of at most CHUNK_SIZE.

    Memory use is independent of ``size``: every chunk is a window on one
    fixed pattern buffer.
    """
    view = memoryview(_PATTERN)
    offset = 0
    while offset < size:
        length = min(CHUNK_SIZE, size - offset)
        start = offset % PATTERN_PERIOD
        yield view[start : start + length]
        offset += length


@functools.lru_cache(maxsize=32)
def download_bytes_sha256(size: int) -> str:
    """Hex SHA-256 of ``/test/download?size=<size>``, computed without holding the body."""
    digest = hashlib.sha256()
    for chunk in download_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


class _BadParam(Exception):
    pass


def _number(query: Mapping[str, str], name: str, default: float | None = None) -> float:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise _BadParam(f"{name} is required")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _BadParam(f"{name} must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise _BadParam(f"{name} must be a non-negative number")
    return value


def _count(query: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = query.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit():
        raise _BadParam(f"{name} must be a non-negative integer")
    return int(raw)


def _bad_request(exc: Exception) -> web.Response:
    return web.json_response({"type": "request_error", "detail": str(exc)}, status=400)


#: Raised when the client goes away mid-transfer. Proxy tests provoke that on
#: purpose, so the routes end quietly instead of logging a traceback.
_CLIENT_GONE = (ConnectionError, ClientPayloadError)


def _client_gone() -> web.Response:
    """What a handler returns once its client vanished; aiohttp drops it silently."""
    return web.Response(status=400)


async def _hash_body(request: web.Request) -> tuple[str, int]:
    """SHA-256 and length of the request body, read in chunks, never held whole."""
    digest, length = hashlib.sha256(), 0
    async for chunk in request.content.iter_chunked(CHUNK_SIZE):
        digest.update(chunk)
        length += len(chunk)
    return digest.hexdigest(), length


@require_auth
async def echo(request: web.Request) -> web.Response:
    """Any method: what arrived, exactly: raw path, raw headers in order, body hash."""
    try:
        body_sha256, length = await _hash_body(request)
    except _CLIENT_GONE:
        return _client_gone()
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in request.raw_headers
            ],
            "body_sha256": body_sha256,
            "body_length": length,
        }
    )


@require_auth
async def download(request: web.Request) -> web.StreamResponse:
    """``?size=N``: N pattern bytes in 64 KiB chunks, with Content-Length, never buffered."""
    try:
        size = _count(request.query, "size")
    except _BadParam as exc:
        return _bad_request(exc)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    try:
        for chunk in download_chunks(size):
            await response.write(chunk)  # waits for the socket to drain: back-pressure
    except _CLIENT_GONE:
        pass
    return response


@require_auth
async def upload(request: web.Request) -> web.Response:
    """POST/PUT: hash the body while it streams in; answer its SHA-256 and length."""
    try:
        sha256, length = await _hash_body(request)
    except _CLIENT_GONE:
        return _client_gone()
    return web.json_response({"sha256": sha256, "length": length})


@require_auth
async def slow(request: web.Request) -> web.Response:
    """``?delay=S``: nothing at all (not even headers) for S seconds."""
    try:
        delay = _number(request.query, "delay", 1.0)
    except _BadParam as exc:
        return _bad_request(exc)
    await asyncio.sleep(delay)
    return web.json_response({"delay": delay})


@require_auth
async def slow_body(request: web.Request) -> web.StreamResponse:
    """``?chunks=N&interval=S``: headers at once, then a chunk every S seconds.

    Each chunk, the first included, waits S seconds, so every gap a client
    sees (headers to first byte, byte to byte) is S long.
    """
    try:
        chunks = _count(request.query, "chunks", 3)
        interval = _number(request.query, "interval", 0.5)
    except _BadParam as exc:
        return _bad_request(exc)
    parts = [f"chunk {i}\n".encode() for i in range(chunks)]
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.content_length = sum(map(len, parts))
    await response.prepare(request)  # StreamResponse sends the headers right away
    if request.method == "HEAD":
        return response
    try:
        for part in parts:
            await asyncio.sleep(interval)
            await response.write(part)
    except _CLIENT_GONE:
        pass
    return response


@require_auth
async def status(request: web.Request) -> web.Response:
    """``/test/status/{code}``: that status, ``{"status": code}``, optional Location."""
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        return _bad_request(ValueError("status must be between 200 and 599"))
    await request.read()
    headers = {}
    if "location" in request.query:
        headers["Location"] = request.query["location"]
    if code in (204, 304):
        return web.Response(status=code, headers=headers)
    return web.json_response({"status": code}, status=code, headers=headers)


@require_auth
async def cookies(request: web.Request) -> web.Response:
    """Two separate Set-Cookie headers, which must never be folded into one."""
    response = web.json_response({"cookies": ["a", "b"]})
    response.set_cookie("a", "1", path="/")
    response.set_cookie("b", "2", path="/")
    return response


@require_auth
async def gzipped(request: web.Request) -> web.Response:
    """A body gzip-compressed by us (``GZIP_BODY``), labelled ``Content-Encoding: gzip``."""
    return web.Response(
        body=GZIP_BODY,
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )


@require_auth
async def hop_by_hop(request: web.Request) -> web.Response:
    """Hop-by-hop headers a proxy must strip, next to one it must keep.

    aiohttp only writes its own ``Connection`` header when the handler set
    none, so this one reaches the socket as written (the tests check that).
    """
    return web.json_response(
        {"hop_by_hop": ["Connection", "X-Hop-Custom", "Keep-Alive"]},
        headers={
            "Connection": "X-Hop-Custom",
            "X-Hop-Custom": "1",
            "Keep-Alive": "timeout=5",
            "X-End-To-End": "1",
        },
    )


def add_test_routes(app: web.Application) -> None:
    app.router.add_route("*", "/test/echo", echo)
    app.router.add_route("*", "/test/echo/{tail:.*}", echo)
    app.router.add_get("/test/download", download)
    app.router.add_post("/test/upload", upload)
    app.router.add_put("/test/upload", upload)
    app.router.add_get("/test/slow", slow)
    app.router.add_get("/test/slow-body", slow_body)
    app.router.add_route("*", r"/test/status/{code:\d{3}}", status)
    app.router.add_get("/test/cookies", cookies)
    app.router.add_get("/test/gzip", gzipped)
    app.router.add_get("/test/hop-by-hop", hop_by_hop)
