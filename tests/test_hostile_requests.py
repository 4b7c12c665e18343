"""Hostile and malformed requests, as raw bytes on the wire (no HTTP client in between).

Each test sends one request a well-behaved client would never send and checks three things:

- the answer is a clear 4xx with the contract's JSON error (``{"error", "message"}`` with
  ``X-Proxy-Error``), whether the proxy's middleware refuses it or aiohttp's HTTP parser does
  (then the proxy's connection handler answers and closes the connection: see
  ``assert_parser_refused``);
- nothing reached the upstream: the emulator's ``api_requests`` counter is unchanged, and a
  middleware added to the emulator for these tests saw no request at all, routed or not;
- the proxy keeps serving: a normal request afterwards gets its answer.

Request smuggling is checked by hiding a second request in the body (``/test/echo/smuggled``):
it must never reach the upstream as a request of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import Emulator, MakeProxy, wait_until

from proxy.emulator import EmulatorSettings, create_emulator_app
from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

SMUGGLED = b"/test/echo/smuggled"

# --- an emulator that records every request it sees ----------------------------------------

UPSTREAM_SAW = web.AppKey("hostile_upstream_saw", list)


@web.middleware
async def _record(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[UPSTREAM_SAW].append((request.method, request.raw_path))
    response: web.StreamResponse = await handler(request)
    return response


@pytest.fixture
async def emulator(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Emulator:
    """The conftest emulator, plus a record of every request that reached it.

    ``api_requests`` counts only the routes behind the credential check; the record also
    shows requests to paths the emulator has no route for (under a path prefix, say).
    """
    app = create_emulator_app(EmulatorSettings())
    app[UPSTREAM_SAW] = []
    app.middlewares.insert(0, _record)
    return Emulator(await aiohttp_server(app), app)


class UpstreamWatch:
    """What reached the upstream since the watch started."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.counted = emulator.state.api_requests
        self.start = len(emulator.app[UPSTREAM_SAW])

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(self.emulator.app[UPSTREAM_SAW][self.start :])

    def assert_untouched(self) -> None:
        assert self.requests == []
        assert self.emulator.state.api_requests == self.counted


# --- raw exchanges -------------------------------------------------------------------------


@dataclass
class Answer:
    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} repeated: {values}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    answers: list[Answer]
    #: The proxy closed the connection (as opposed to the client giving up waiting).
    closed: bool
    rest: bytes = field(default=b"")

    @property
    def only(self) -> Answer:
        assert len(self.answers) == 1, [(a.status, a.body[:80]) for a in self.answers]
        return self.answers[0]


def parse_answers(data: bytes, *, head_first: bool = False) -> tuple[list[Answer], bytes]:
    """Split raw bytes into responses; ``head_first``: the first final one answers a HEAD."""
    answers: list[Answer] = []
    while b"\r\n\r\n" in data:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
        answer = Answer(version, int(status), headers, b"")
        answers.append(answer)
        if answer.status < 200:
            continue
        if head_first and len([a for a in answers if a.status >= 200]) == 1:
            continue
        length = answer.header("Content-Length")
        if length is None:
            answer.body, data = data, b""
        else:
            answer.body, data = data[: int(length)], data[int(length) :]
    return answers, data


async def talk(
    port: int, *parts: bytes, wait_s: float = 5.0, pause_s: float = 0.0, head_first: bool = False
) -> Exchange:
    """Send ``parts`` (``pause_s`` apart), then read until the proxy closes or ``wait_s``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    closed = False
    try:
        for index, part in enumerate(parts):
            if index and pause_s:
                await asyncio.sleep(pause_s)
            writer.write(part)
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while chunk := await reader.read(65536):
                    received += chunk
                closed = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    answers, rest = parse_answers(received, head_first=head_first)
    return Exchange(answers, closed, rest)


def assert_proxy_refused(exchange: Exchange, status: int = 400, code: str = "bad_request") -> None:
    """The proxy's own refusal: the contract's JSON error with ``X-Proxy-Error``."""
    answer = exchange.only
    assert answer.status == status, answer
    assert answer.header("X-Proxy-Error") == code
    assert answer.header("Content-Type") == "application/json"
    body = answer.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]


def assert_parser_refused(exchange: Exchange) -> None:
    """aiohttp's HTTP parser refused the bytes before any middleware ran.

    The proxy's connection handler (``proxy.server._ContractErrorHandler``) answers with the
    contract's JSON 400 and closes the connection, so nothing after the broken bytes is ever
    read as another request. It echoes none of the input. The status is 400 even for an
    over-long request line (414 would be more precise) or header (431): aiohttp's parser raises
    ``LineTooLong``, a ``BadHttpMessage``, for both, and maps every parser error to 400.
    """
    assert_proxy_refused(exchange)
    assert b"\\x" not in exchange.only.body, "the answer echoes the request's bytes"
    assert exchange.closed, "the connection stays open after a parser error"


async def assert_still_serving(proxy: Client, emulator: Emulator) -> None:
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        proxy.port, b"GET /test/echo/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert exchange.only.status == 200
    assert exchange.only.json()["raw_path"] == "/test/echo/after"
    assert watch.requests == [("GET", "/test/echo/after")]


def request(head: bytes, body: bytes = b"") -> bytes:
    return head.replace(b"\n", b"\r\n") + body


# --- refused by aiohttp's parser: framing, syntax, limits ----------------------------------

_CHUNKED_POST = b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
_INNER = b"GET /test/echo/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1"

PARSER_REFUSALS = [
    # Content-Length that is not one plain number.
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 5\n\n")
        + b"abcde",
        id="two Content-Length headers that disagree",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 3\n\n")
        + b"abc",
        id="two Content-Length headers that agree",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 3, 3\n\n") + b"abc",
        id="a Content-Length that is a list",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: +3\n\n") + b"abc",
        id="a Content-Length with a plus sign",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: -1\n\n") + b"abc",
        id="a negative Content-Length",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 0x3\n\n") + b"abc",
        id="a Content-Length in hex",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 99999999999999999999999\n\n"),
        id="a Content-Length too big for any integer",
    ),
    # Content-Length together with Transfer-Encoding (CL.TE and TE.CL smuggling shapes).
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 6\n")
        + request(b"Transfer-Encoding: chunked\n\n")
        + b"0\r\n\r\n"
        + SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
        id="Content-Length then Transfer-Encoding chunked (CL.TE smuggling)",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n")
        + request(b"Content-Length: 4\n\n")
        + b"%x\r\n" % len(_INNER)
        + _INNER
        + b"\r\n0\r\n\r\n",
        id="Transfer-Encoding chunked then Content-Length (TE.CL smuggling)",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.0\nHost: x\nTransfer-Encoding: chunked\n")
        + request(b"Content-Length: 4\n\n")
        + b"%x\r\n" % len(_INNER)
        + _INNER
        + b"\r\n0\r\n\r\n",
        id="TE.CL smuggling in HTTP/1.0",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 6\n")
        + request(b"Transfer-Encoding: xchunked\n\n")
        + b"0\r\n\r\n"
        + SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
        id="Content-Length with an obfuscated xchunked coding",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 6\n")
        + request(b"Transfer-Encoding : chunked\n\n")
        + b"0\r\n\r\n"
        + SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
        id="Content-Length with a space before the Transfer-Encoding colon",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 6\n")
        + b"Transfer-Encoding:\x0bchunked\r\n\r\n"
        + b"0\r\n\r\n"
        + SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
        id="Content-Length with a vertical tab before chunked",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 3\n")
        + request(b"Transfer-Encoding: identity\n\n")
        + b"abc",
        id="Content-Length with Transfer-Encoding identity",
    ),
    # Transfer-Encoding other than a final "chunked", repeated, or obfuscated.
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: gzip\n\n") + b"abc",
        id="Transfer-Encoding gzip without chunked",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\n\n")
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding xchunked",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, identity\n\n")
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding chunked then identity",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, chunked\n\n")
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding chunked twice in one list",
    ),
    pytest.param(
        request(
            b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
            b"Transfer-Encoding: chunked\n\n"
        )
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="two Transfer-Encoding chunked headers",
    ),
    pytest.param(
        request(
            b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: gzip\n"
            b"Transfer-Encoding: chunked\n\n"
        )
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding gzip and chunked in two headers",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: \n\n")
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="an empty Transfer-Encoding",
    ),
    # Stricter than RFC 9110 (a trailing tab is optional whitespace), but refusing is safe.
    pytest.param(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding chunked with a trailing tab",
    ),
    # Invalid chunk sizes and chunk framing.
    pytest.param(
        request(_CHUNKED_POST) + b"zz\r\nabc\r\n0\r\n\r\n", id="a chunk size that is not hex"
    ),
    pytest.param(request(_CHUNKED_POST) + b"-3\r\nabc\r\n0\r\n\r\n", id="a negative chunk size"),
    pytest.param(
        request(_CHUNKED_POST) + b"+3\r\nabc\r\n0\r\n\r\n", id="a chunk size with a plus sign"
    ),
    pytest.param(
        request(_CHUNKED_POST) + b"0x3\r\nabc\r\n0\r\n\r\n", id="a chunk size with a 0x prefix"
    ),
    pytest.param(
        request(_CHUNKED_POST) + b"3 \r\nabc\r\n0\r\n\r\n", id="a chunk size with a trailing space"
    ),
    pytest.param(
        request(_CHUNKED_POST) + b"fffffffffffffffff3\r\nabc\r\n0\r\n\r\n",
        id="a chunk size too big for any integer",
    ),
    pytest.param(
        request(_CHUNKED_POST) + b"4\r\nHello\r\n0\r\n\r\n", id="a chunk longer than its size"
    ),
    pytest.param(
        request(_CHUNKED_POST) + b"3\r\nabcX0\r\n\r\n", id="a chunk without its closing CRLF"
    ),
    pytest.param(request(_CHUNKED_POST) + b"3\nabc\n0\n\n", id="chunks framed with bare LFs"),
    pytest.param(
        request(_CHUNKED_POST) + b"3;a=\rb\r\nabc\r\n0\r\n\r\n", id="a bare CR in a chunk extension"
    ),
    # NUL and control characters in the target.
    pytest.param(b"GET /test/echo/\x00x HTTP/1.1\r\nHost: x\r\n\r\n", id="a NUL in the target"),
    pytest.param(b"GET /test/echo/\x7fx HTTP/1.1\r\nHost: x\r\n\r\n", id="a DEL in the target"),
    pytest.param(
        b"GET /test/echo/\x01x HTTP/1.1\r\nHost: x\r\n\r\n", id="a control character in the target"
    ),
    pytest.param(b"GET /test/echo/\tx HTTP/1.1\r\nHost: x\r\n\r\n", id="a tab in the target"),
    pytest.param(b"GET /test/echo/\rx HTTP/1.1\r\nHost: x\r\n\r\n", id="a bare CR in the target"),
    pytest.param(
        b"GET /test/echo/\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", id="raw UTF-8 in the target"
    ),
    pytest.param(b"GET /test/echo x HTTP/1.1\r\nHost: x\r\n\r\n", id="a space in the target"),
    # ...and in header names and values.
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", id="a bare CR in a header value"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\nX-Injected: b\r\n\r\n",
        id="a bare LF in a header value",
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", id="a NUL in a header value"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", id="a DEL in a header value"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        id="a control character in a header value",
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-\x00A: a\r\n\r\n", id="a NUL in a header name"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-\x7fA: a\r\n\r\n", id="a DEL in a header name"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n", id="a space in a header name"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n",
        id="a space between a header name and its colon",
    ),
    pytest.param(b"GET /test/echo HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", id="an empty header name"),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", id="a header line without a colon"
    ),
    pytest.param(
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        id="a header folded onto a second line",
    ),
    # Request lines and Host.
    pytest.param(b"GET /test/echo HTTP/1.1\nHost: x\n\n", id="a request head with bare LFs"),
    pytest.param(b"GET /test/echo HTTP/1.2\r\nHost: x\r\n\r\n", id="HTTP/1.2"),
    pytest.param(
        b"GET /test/echo HTTP/1.x\r\nHost: x\r\n\r\n", id="a version that is not a number"
    ),
    pytest.param(b"get /test/echo HTTP/1.1\r\nHost: x\r\n\r\n", id="a lowercase method"),
    pytest.param(b"GET example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", id="a GET in authority form"),
    pytest.param(b"GET /test/echo HTTP/1.1\r\n\r\n", id="no Host header"),
    pytest.param(b"GET /test/echo HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", id="two Host headers"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="the HTTP/2 connection preface"),
]


@pytest.mark.parametrize("data", PARSER_REFUSALS)
async def test_malformed_requests_are_refused_by_the_parser_and_reach_no_upstream(
    proxy: Client, emulator: Emulator, data: bytes
) -> None:
    watch = UpstreamWatch(emulator)
    exchange = await talk(proxy.port, data)
    assert_parser_refused(exchange)
    watch.assert_untouched()
    await assert_still_serving(proxy, emulator)


async def test_a_request_hidden_in_a_smuggling_body_never_reaches_the_upstream(
    proxy: Client, emulator: Emulator
) -> None:
    """CL.TE with the hidden request, then an honest request on a new connection: only the
    honest one may reach the upstream, and the hidden one is never answered."""
    watch = UpstreamWatch(emulator)
    smuggle = (
        request(b"POST /test/echo HTTP/1.1\nHost: x\nContent-Length: 6\n")
        + request(b"Transfer-Encoding: chunked\n\n")
        + b"0\r\n\r\n"
        + SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    )
    exchange = await talk(proxy.port, smuggle)
    assert_parser_refused(exchange)
    assert exchange.rest == b""
    await assert_still_serving(proxy, emulator)
    assert all(SMUGGLED.decode() not in path for _, path in watch.requests)
    assert watch.requests == [("GET", "/test/echo/after")]


async def test_pipelined_requests_both_reach_the_upstream(
    proxy: Client, emulator: Emulator
) -> None:
    """The control for the smuggling tests: two honest requests in one write are both seen,
    so a hidden request that got through would show up the same way."""
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        proxy.port,
        b"GET /test/echo/first HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /test/echo/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert [answer.status for answer in exchange.answers] == [200, 200]
    assert watch.requests == [("GET", "/test/echo/first"), ("GET", "/test/echo/second")]


async def test_a_request_inside_a_well_framed_body_is_only_body(
    proxy: Client, emulator: Emulator
) -> None:
    hidden = SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        proxy.port,
        request(b"POST /test/echo HTTP/1.1\nHost: x\nConnection: close\n")
        + b"Content-Length: %d\r\n\r\n" % len(hidden)
        + hidden,
    )
    seen = exchange.only.json()
    assert seen["body_sha256"] == hashlib.sha256(hidden).hexdigest()
    assert watch.requests == [("POST", "/test/echo")]


# --- refused by the proxy: targets, versions, transfer codings -----------------------------

PROXY_REFUSALS = [
    # Only origin-form targets (test_proxy_errors.py has absolute-form http:// and CONNECT
    # with an authority).
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", id="OPTIONS in asterisk form"),
    pytest.param(
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        id="OPTIONS in asterisk form with a body",
    ),
    pytest.param(
        b"GET https://evil.example/test/echo HTTP/1.1\r\nHost: x\r\n\r\n",
        id="an absolute https target",
    ),
    pytest.param(
        b"GET HTTP://127.0.0.1/test/echo HTTP/1.1\r\nHost: x\r\n\r\n",
        id="an absolute target in capitals",
    ),
    pytest.param(
        b"POST http://127.0.0.1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        id="a POST with a body to an absolute target",
    ),
    pytest.param(
        b"CONNECT /test/echo HTTP/1.1\r\nHost: x\r\n\r\n", id="CONNECT with an origin-form target"
    ),
    # HTTP versions other than 1.0 and 1.1 that the parser lets through.
    pytest.param(b"GET /test/echo\r\n\r\n", id="an HTTP/0.9 request"),
    pytest.param(b"GET /test/echo HTTP/2.0\r\nHost: x\r\n\r\n", id="HTTP/2.0 spelt as text"),
    # Targets that cannot be forwarded byte for byte safely.
    pytest.param(
        b"GET /test/echo/%zz HTTP/1.1\r\nHost: x\r\n\r\n", id="a percent escape that is not hex"
    ),
    pytest.param(b"GET /test/echo/% HTTP/1.1\r\nHost: x\r\n\r\n", id="a lone percent sign"),
    pytest.param(
        b"GET /test/echo/%4 HTTP/1.1\r\nHost: x\r\n\r\n", id="a percent escape with one digit"
    ),
    pytest.param(b"GET /test/echo/%00 HTTP/1.1\r\nHost: x\r\n\r\n", id="an escaped NUL"),
    pytest.param(
        b"GET /test/echo/a%00.json?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        id="an escaped NUL inside a segment",
    ),
    pytest.param(
        b"GET /test/echo/a%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: x\r\n\r\n",
        id="an escaped CRLF that would inject a header",
    ),
    pytest.param(b"GET /test/echo/%0A HTTP/1.1\r\nHost: x\r\n\r\n", id="an escaped LF"),
    pytest.param(b"GET /test/echo/%7f HTTP/1.1\r\nHost: x\r\n\r\n", id="an escaped DEL"),
    pytest.param(b"GET /test/echo#frag HTTP/1.1\r\nHost: x\r\n\r\n", id="a fragment"),
    pytest.param(
        b"GET /test/echo?a=1#b HTTP/1.1\r\nHost: x\r\n\r\n", id="a fragment after the query"
    ),
    pytest.param(b"GET /test/../test/echo HTTP/1.1\r\nHost: x\r\n\r\n", id="a dot-dot segment"),
    # Transfer codings the proxy cannot forward faithfully (aiohttp removes only the chunking).
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked\n\n")
        + b"%x\r\n" % len(gzip.compress(b"abc"))
        + gzip.compress(b"abc")
        + b"\r\n0\r\n\r\n",
        id="Transfer-Encoding gzip, chunked",
    ),
    pytest.param(
        request(b"POST /test/echo HTTP/1.1\nHost: x\nTransfer-Encoding: identity, chunked\n\n")
        + b"3\r\nabc\r\n0\r\n\r\n",
        id="Transfer-Encoding identity, chunked",
    ),
]


@pytest.mark.parametrize("data", PROXY_REFUSALS)
async def test_requests_the_proxy_will_not_forward_get_a_json_400(
    proxy: Client, emulator: Emulator, data: bytes
) -> None:
    watch = UpstreamWatch(emulator)
    # Connection: close, so the exchange ends when the proxy has answered.
    head, _, rest = data.partition(b"\r\n")
    exchange = await talk(proxy.port, head + b"\r\nConnection: close\r\n" + rest)
    assert_proxy_refused(exchange)
    assert exchange.only.header("X-Request-Id")
    watch.assert_untouched()
    await assert_still_serving(proxy, emulator)


async def test_broken_percent_escapes_in_the_query_pass_byte_for_byte(
    proxy: Client, emulator: Emulator
) -> None:
    """The query is PandaDoc's to parse; only the path (what routes the request) is checked."""
    exchange = await talk(
        proxy.port,
        b"GET /test/echo?a=%zz&b=%&c=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert exchange.only.json()["raw_path"] == "/test/echo?a=%zz&b=%&c=%00"


@pytest.mark.parametrize(
    "coding",
    [
        pytest.param(b"chunked ", id="chunked with a trailing space"),
        pytest.param(b"CHUNKED", id="CHUNKED in capitals"),
        pytest.param(b"\tchunked", id="chunked after a tab"),
        pytest.param(b"Chunked  ", id="Chunked with two trailing spaces"),
        pytest.param(b", chunked", id="chunked after an empty list member"),
    ],
)
async def test_equivalent_spellings_of_chunked_are_one_request_with_its_body(
    proxy: Client, emulator: Emulator, coding: bytes
) -> None:
    """Case and optional whitespace do not change a transfer coding (RFC 9110 5.6): these are
    plain chunked requests, forwarded once, re-framed with Content-Length and no TE."""
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        proxy.port,
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: "
        + coding
        + b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    )
    seen = exchange.only.json()
    assert seen["body_sha256"] == hashlib.sha256(b"abcdefg").hexdigest()
    names = [name.lower() for name, _ in seen["headers"]]
    assert "transfer-encoding" not in names
    assert ["Content-Length", "7"] in seen["headers"]
    assert watch.requests == [("POST", "/test/echo")]


# --- limits --------------------------------------------------------------------------------


def _limits(proxy: Client) -> dict[str, int]:
    handler_args: dict[str, Any] = proxy.app._handler_args  # type: ignore[union-attr]
    return {
        "line": handler_args["max_line_size"],
        "field": handler_args["max_field_size"],
        "headers": handler_args.get("max_headers", 128),  # aiohttp's default
    }


#: Request heads over one of the parser's limits, built from the limits the proxy runs with.
OVER_THE_LIMITS: list[Any] = [
    pytest.param(
        lambda limits: b"GET /test/echo?" + b"a" * limits["line"] + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"LineTooLong",
        id="a request line over the limit",
    ),
    pytest.param(
        lambda limits: (
            b"GET /test/echo HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * (limits["field"] + 1)
            + b"\r\n\r\n"
        ),
        None,
        id="a header value over the limit",
    ),
    pytest.param(
        lambda limits: (
            b"GET /test/echo HTTP/1.1\r\nHost: x\r\n"
            + b"X" * (limits["field"] + 1)
            + b": v\r\n\r\n"
        ),
        None,
        id="a header name over the limit",
    ),
    pytest.param(
        # Plus Host: one header too many.
        lambda limits: (
            b"GET /test/echo HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(limits["headers"]))
            + b"\r\n"
        ),
        None,
        id="one header more than the limit",
    ),
]


@pytest.mark.parametrize(("build", "named"), OVER_THE_LIMITS)
async def test_a_request_head_over_a_parser_limit_is_refused(
    proxy: Client,
    emulator: Emulator,
    build: Callable[[dict[str, int]], bytes],
    named: bytes | None,
) -> None:
    watch = UpstreamWatch(emulator)
    exchange = await talk(proxy.port, build(_limits(proxy)))
    assert_parser_refused(exchange)
    if named is not None:
        assert named in exchange.only.body
    assert b"aaaa" not in exchange.only.body  # nothing of the request is echoed
    watch.assert_untouched()
    await assert_still_serving(proxy, emulator)


async def test_a_long_header_within_the_limits_is_forwarded_intact(proxy: Client) -> None:
    value = "v" * 8000  # under the proxy's limit, and the emulator's own (8190)
    exchange = await talk(
        proxy.port,
        b"GET /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: "
        + value.encode()
        + b"\r\n\r\n",
    )
    assert ["X-Long", value] in exchange.only.json()["headers"]


@pytest.fixture
async def small_limit_proxy(make_proxy: MakeProxy, connected: StoredPair) -> Client:
    return await make_proxy(limits={"max_body_bytes": 1000})


async def test_a_chunked_body_over_the_limit_without_content_length_gets_413(
    small_limit_proxy: Client, emulator: Emulator
) -> None:
    """Raw chunks, no Content-Length: the proxy counts the bytes itself. The rest of the body is
    read as body (the chunks look like a request), so the next request on the same connection
    is still framed right."""
    hidden = SMUGGLED.join([b"GET ", b" HTTP/1.1\r\nHost: x\r\n\r\n"])
    chunk = hidden + b"y" * (400 - len(hidden))
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        small_limit_proxy.port,
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"GET /test/echo/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, second = exchange.answers
    assert_proxy_refused(Exchange([first], closed=True), 413, "body_too_large")
    assert second.status == 200
    assert second.json()["raw_path"] == "/test/echo/next"
    assert watch.requests == [("GET", "/test/echo/next")]


# --- Expect, HEAD, encoded bodies ----------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(b"100-continue", id="100-continue"),
        pytest.param(b"100-Continue", id="100-continue in another case"),
    ],
)
async def test_expect_100_continue_is_answered_and_not_forwarded(
    proxy: Client, emulator: Emulator, spelling: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: " + spelling + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        await writer.drain()
        async with asyncio.timeout(5):
            answers, _ = parse_answers(await reader.read())
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    seen = answers[0].json()
    assert seen["body_sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert "expect" not in [name.lower() for name, _ in seen["headers"]]
    assert ["Content-Length", "5"] in seen["headers"]


EXPECTATIONS_REFUSED = [
    # The client waits for 100 Continue before it sends the body (this one never sends it):
    # the final answer comes instead, and the proxy closes the connection, since the body
    # that the client will not send can no longer frame the next request (RFC 9110 10.1.1).
    pytest.param(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
        b"Expect: 100-continue\r\n\r\n",
        413,
        "body_too_large",
        True,
        id="100-continue for a body over the limit gets 413 at once and the connection closed",
    ),
    pytest.param(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: tea\r\nConnection: close\r\n\r\nhello",
        417,
        "expectation_failed",
        False,
        id="an unknown expectation gets a JSON 417",
    ),
    pytest.param(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 200-ok\r\nConnection: close\r\n\r\nhello",
        417,
        "expectation_failed",
        False,
        id="an expectation of a status gets a JSON 417",
    ),
    pytest.param(
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue, tea\r\nConnection: close\r\n\r\nhello",
        417,
        "expectation_failed",
        False,
        id="100-continue together with an unknown expectation gets a JSON 417",
    ),
    pytest.param(
        b"GET /_proxy/health HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nConnection: close\r\n\r\n",
        417,
        "expectation_failed",
        False,
        id="an unknown expectation on the proxy's own route gets a JSON 417",
    ),
]


@pytest.mark.parametrize(("data", "status", "code", "closes"), EXPECTATIONS_REFUSED)
async def test_expectations_are_refused_before_any_100_continue(
    small_limit_proxy: Client,
    emulator: Emulator,
    data: bytes,
    status: int,
    code: str,
    closes: bool,
) -> None:
    watch = UpstreamWatch(emulator)
    exchange = await talk(small_limit_proxy.port, data, wait_s=3)
    assert_proxy_refused(exchange, status, code)  # the only answer: no 100 Continue before it
    assert exchange.only.header("X-Request-Id")
    if closes:
        assert exchange.closed
        assert exchange.only.header("Connection") == "close"
    watch.assert_untouched()
    await assert_still_serving(small_limit_proxy, emulator)


@pytest.mark.parametrize(
    "expectation",
    [
        pytest.param(b"100-continue", id="100-continue"),
        pytest.param(b"tea", id="an unknown expectation"),
    ],
)
async def test_an_expectation_in_an_http_1_0_request_is_ignored(
    proxy: Client, emulator: Emulator, expectation: bytes
) -> None:
    """RFC 9110 10.1.1: a server MUST ignore 100-continue from HTTP/1.0, which has no 100."""
    exchange = await talk(
        proxy.port,
        b"POST /test/echo HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nExpect: "
        + expectation
        + b"\r\n\r\nhello",
    )
    assert exchange.only.status == 200  # and no 100 Continue before it
    assert exchange.only.json()["body_sha256"] == hashlib.sha256(b"hello").hexdigest()


async def test_a_head_answer_has_no_body_even_on_a_kept_alive_connection(
    proxy: Client, emulator: Emulator
) -> None:
    """A body after a HEAD answer would be read as the start of the next answer."""
    exchange = await talk(
        proxy.port,
        b"HEAD /test/echo HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /test/echo/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        head_first=True,
    )
    head, get = exchange.answers
    assert head.status == 200
    assert head.body == b""
    assert int(head.header("Content-Length") or 0) > 0  # the length a GET would have had
    assert get.status == 200
    assert get.json()["raw_path"] == "/test/echo/second"
    assert exchange.rest == b""


async def test_a_gzip_request_body_goes_upstream_as_sent(proxy: Client) -> None:
    """Content-Encoding describes the body end to end: the proxy must not gunzip it (aiohttp's
    server would by default, and forward plain bytes labelled gzip)."""
    plain = b"hello world " * 50
    packed = gzip.compress(plain, mtime=0)
    exchange = await talk(
        proxy.port,
        b"POST /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(packed)
        + packed,
    )
    seen = exchange.only.json()
    # The emulator decodes what it got: the hash of the plain text proves the gzip arrived.
    assert ["Content-Length", str(len(packed))] in seen["headers"]
    assert ["Content-Encoding", "gzip"] in seen["headers"]
    assert seen["body_sha256"] == hashlib.sha256(plain).hexdigest()


@pytest.fixture
async def impatient_proxy(make_proxy: MakeProxy, connected: StoredPair) -> Client:
    """A replica that waits at most half a second for the next part of a request body."""
    return await make_proxy(limits={"body_timeout_s": 0.5})


STALLED_BODIES = [
    # aiohttp's parser drops a broken chunk that arrives after the headers without failing the
    # body: the proxy's idle deadline on the body is what answers.
    pytest.param(
        (request(_CHUNKED_POST), b"3\r\nabc\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        id="a chunk error arriving after the headers",
    ),
    pytest.param(
        (b"POST /test/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-part",),
        id="a client that stops sending its body",
    ),
]


@pytest.mark.parametrize("parts", STALLED_BODIES)
async def test_a_body_that_stops_arriving_gets_408_and_the_connection_is_cut_off(
    impatient_proxy: Client, emulator: Emulator, parts: tuple[bytes, ...]
) -> None:
    watch = UpstreamWatch(emulator)
    exchange = await talk(impatient_proxy.port, *parts, pause_s=0.2, wait_s=3)
    assert_proxy_refused(exchange, status=408, code="request_timeout")
    assert exchange.closed
    watch.assert_untouched()
    await assert_still_serving(impatient_proxy, emulator)


# --- a base URL with a path prefix ---------------------------------------------------------


@pytest.fixture
async def prefixed_proxy(
    make_proxy: MakeProxy, emulator: Emulator, connected: StoredPair
) -> Client:
    """``upstream.base_url`` with a path: ``/test/echo`` plays ``https://gateway/pandadoc``."""
    return await make_proxy(upstream_url=f"{emulator.url}/test/echo")


async def test_a_prefixed_base_url_gets_the_path_appended(
    prefixed_proxy: Client, emulator: Emulator
) -> None:
    target = "/x/a..b/.hidden/.../%2E%2E%2Ehi?q=../..&r=%2e%2e"
    exchange = await talk(
        prefixed_proxy.port,
        f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert exchange.only.json()["raw_path"] == "/test/echo" + target


@pytest.mark.parametrize(
    "target",
    [
        "/../x",
        "/..",
        "/%2e%2e/x",
        "/%2E%2E/x",
        "/.%2e/x",
        "/a/../../x",
        "/a/..",
        "/./x",
        "/..%2fx",
        "/..%2Fx",
        "/..%5cx",
        "/..\\x",
        "/..;/x",
        "/a/%2e%2e;jsessionid=1/x",
        "/../x?q=1",
    ],
)
async def test_dot_segments_cannot_leave_the_base_url_prefix(
    prefixed_proxy: Client, emulator: Emulator, target: str
) -> None:
    """Forwarding ``/test/echo/../x`` byte for byte would let any upstream that normalises
    (most do) serve ``/x``, outside the prefix, with the token attached. Normalising here would
    break "no normalisation"; refusing keeps every forwarded path byte for byte."""
    watch = UpstreamWatch(emulator)
    exchange = await talk(
        prefixed_proxy.port,
        f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert_proxy_refused(exchange)
    assert "dot-segment" in exchange.only.json()["message"]
    watch.assert_untouched()
    after = await talk(
        prefixed_proxy.port, b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert after.only.json()["raw_path"] == "/test/echo/after"


# --- slow and stuck peers ------------------------------------------------------------------


@pytest.fixture
async def strict_proxy(make_proxy: MakeProxy, connected: StoredPair) -> Client:
    """A replica that gives a connection half a second to send a complete request head."""
    return await make_proxy(limits={"header_timeout_s": 0.5})


async def test_a_client_that_sends_its_headers_too_slowly_is_disconnected(
    strict_proxy: Client, emulator: Emulator
) -> None:
    watch = UpstreamWatch(emulator)
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_proxy.port)
    started = asyncio.get_running_loop().time()
    try:
        writer.write(b"GET /test/echo HTTP/1.1\r\nHost: x\r\n")  # ...and never the rest
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the proxy, nothing answered
    finally:
        writer.close()
    assert asyncio.get_running_loop().time() - started < 3
    watch.assert_untouched()
    await assert_still_serving(strict_proxy, emulator)


async def test_a_client_that_disconnects_mid_download_frees_the_upstream_connection(
    proxy: Client, emulator: Emulator
) -> None:
    upstream_server = emulator.server.runner.server  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    # 3 GB: streaming it all after the client left would take the emulator several seconds.
    writer.write(b"GET /test/download?size=3000000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.readexactly(1024 * 1024)  # the download is flowing
    assert len(upstream_server.connections) == 1
    writer.close()
    await wait_until(lambda: len(upstream_server.connections) == 0, within_s=2)
    await assert_still_serving(proxy, emulator)


async def test_a_connection_over_the_cap_gets_503_overloaded_and_is_closed(
    make_proxy: MakeProxy, emulator: Emulator, connected: StoredPair
) -> None:
    proxy = await make_proxy(limits={"max_connections": 2})
    held = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
    await wait_until(lambda: len(proxy.server.runner.server.connections) == 2)  # type: ignore[union-attr]
    exchange = await talk(proxy.port, b"GET /test/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_proxy_refused(exchange, status=503, code="overloaded")
    assert exchange.only.header("Retry-After") == "1"
    assert exchange.closed
    for _, writer in held:
        writer.close()
    await wait_until(lambda: len(proxy.server.runner.server.connections) == 0)  # type: ignore[union-attr]
    await assert_still_serving(proxy, emulator)
