"""A client that leaves early is not a server error, and leaves nothing behind.

An upload cut short (half-closed, closed or reset) or a download abandoned gets one access line
at info with status 499 (nginx's "client closed request") and the bytes moved, no traceback, no
5xx in the metrics, and nothing forwarded for an upload. The proxy runs as ``serve`` runs it
(its own process, on uvloop). What an abort leaves in memory: ``test_memory.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, ProxyProcess, ProxyTestServer, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_logging import log_lines

from proxy import create_app
from proxy.config import Config
from proxy.tokens import StoredPair

Spawn = Callable[..., Awaitable[ProxyProcess]]
Client = TestClient[web.Request, web.Application]
Ending = Literal["half-close", "close", "reset"]

MiB = 1024 * 1024
DECLARED = 10 * MiB
SENT = 5 * MiB


async def abort_an_upload(port: int, ending: Ending = "half-close") -> None:
    """Declare a 10 MiB body, send 5 MiB of it, then end the connection as ``ending`` says."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /test/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % DECLARED
        )
        chunk = b"u" * (256 * 1024)
        for _ in range(SENT // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        if ending == "half-close":
            writer.write_eof()  # "No more from me", and wait for the proxy to close.
            async with asyncio.timeout(10):
                assert await reader.read() == b""  # nothing answered: no one could read it
        elif ending == "reset":
            sock = writer.get_extra_info("socket")
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def requests_by_status_class(replica: ProxyProcess) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/_proxy/metrics") as response,
    ):
        text = await response.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "pandadoc_proxy_requests":
            for sample in family.samples:
                if sample.name == "pandadoc_proxy_requests_total":
                    status_class = sample.labels["status_class"]
                    counts[status_class] = counts.get(status_class, 0) + sample.value
    return counts


async def counted_4xx(replica: ProxyProcess, expected: int) -> dict[str, float]:
    """Wait until the replica has counted ``expected`` 4xx answers (it notices that a client
    left on its own time); returns the counts by status class."""
    counts: dict[str, float] = {}

    async def counted() -> bool:
        counts.clear()
        counts.update(await requests_by_status_class(replica))
        return counts.get("4xx", 0) >= expected

    await wait_until(counted, within_s=30)
    assert counts["4xx"] == expected
    return counts


def problems_in(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines at warning or above, and any with a traceback."""
    return [line for line in lines if line["level"] not in ("info", "debug") or "exception" in line]


def aborted_access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "access" and "aborted" in line]


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("half-close", id="the client half-closes its connection"),
        pytest.param("close", id="the client closes its connection"),
        pytest.param("reset", id="the client resets its connection"),
    ],
)
async def test_an_aborted_upload_is_one_info_line_with_499_and_is_not_forwarded(
    spawn_proxy: Spawn,
    config: Config,
    connected: StoredPair,
    emulator: Emulator,
    ending: Ending,
) -> None:
    replica = await spawn_proxy(config)
    forwarded = emulator.state.api_requests
    await abort_an_upload(replica.port, ending)
    counts = await counted_4xx(replica, 1)
    assert "5xx" not in counts
    assert emulator.state.api_requests == forwarded
    await replica.stop()

    lines = log_lines(replica)
    assert problems_in(lines) == []
    (line,) = aborted_access_lines(lines)
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/test/upload", 499)
    assert line["aborted"] == "upload"
    assert line["bytes_sent"] == 0
    if ending == "reset":
        # A reset may discard what was still in flight: some of the body, never more.
        assert 0 < line["bytes_received"] <= SENT
    else:
        assert line["bytes_received"] == SENT


@pytest.mark.parametrize(
    "stalls",
    [
        pytest.param(False, id="the client closes while it reads"),
        # The proxy is then waiting for the full socket to drain when the reset comes, and
        # aiohttp raises a plain ConnectionError there, not a ConnectionResetError. The pause
        # only makes that state likely; either state must give the same line.
        pytest.param(True, id="the client stops reading then resets"),
    ],
)
async def test_an_abandoned_download_is_one_info_line_with_499_and_the_bytes_sent(
    spawn_proxy: Spawn, config: Config, connected: StoredPair, stalls: bool
) -> None:
    replica = await spawn_proxy(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", replica.port)
    writer.write(b"GET /test/download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (1000 * MiB))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    await reader.readexactly(2 * MiB)  # the download is flowing
    if stalls:
        await asyncio.sleep(0.3)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    counts = await counted_4xx(replica, 1)
    assert "5xx" not in counts
    await replica.stop()

    lines = log_lines(replica)
    assert problems_in(lines) == []
    (line,) = aborted_access_lines(lines)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/test/download", 499)
    assert line["aborted"] == "download"
    assert line["bytes_received"] == 0
    # What the client read, and at most what the kernel's buffers held besides, never all.
    assert 2 * MiB <= line["bytes_sent"] < 1000 * MiB


async def test_a_client_that_leaves_while_pandadoc_thinks_is_a_499_too(
    spawn_proxy: Spawn, config: Config, connected: StoredPair, emulator: Emulator
) -> None:
    replica = await spawn_proxy(config)
    before = emulator.state.api_requests
    _, writer = await asyncio.open_connection("127.0.0.1", replica.port)
    writer.write(b"GET /test/slow?delay=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await wait_until(lambda: emulator.state.api_requests > before)  # PandaDoc has it
    writer.close()
    counts = await counted_4xx(replica, 1)
    assert "5xx" not in counts
    await replica.stop()

    lines = log_lines(replica)
    assert problems_in(lines) == []
    (line,) = aborted_access_lines(lines)
    assert (line["path"], line["status"], line["aborted"]) == ("/test/slow", 499, "waiting")
    assert (line["bytes_received"], line["bytes_sent"]) == (0, 0)


@pytest.mark.parametrize(
    ("client_leaves", "status"),
    [
        pytest.param(True, 499, id="after the client left it is a 499"),
        pytest.param(False, 500, id="with the client still there it is the proxy's own 500"),
    ],
)
async def test_a_connection_reset_under_the_middleware(
    aiohttp_client: Callable[..., Awaitable[Client]],
    config: Config,
    connected: StoredPair,
    caplog: pytest.LogCaptureFixture,
    client_leaves: bool,
    status: int,
) -> None:
    """Anything below the middleware (an error answer written to a client that has just left,
    say) may meet the closed connection: a ConnectionResetError counts as the client's doing
    only if the client's connection is in fact gone."""

    @web.middleware
    async def reset(request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        if client_leaves:
            await wait_until(lambda: transport is None or transport.is_closing())
        raise ConnectionResetError("Connection lost")

    app = create_app(config)
    app.middlewares.append(reset)  # inside the request middleware
    proxy = await aiohttp_client(ProxyTestServer(app))
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /test/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    if client_leaves:
        writer.close()
    else:
        async with asyncio.timeout(5):
            assert (await reader.readline()).startswith(b"HTTP/1.1 500 ")
        writer.close()

    def access() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", None) == "access"]

    await wait_until(lambda: len(access()) == 1)
    assert access()[0].status == status  # type: ignore[attr-defined]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert (errors == []) is client_leaves
