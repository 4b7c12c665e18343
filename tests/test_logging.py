"""Logs: one access line per request, events for what matters, and never a secret."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from conftest import Emulator, ProxyProcess, free_port, proxy_config, raw_exchange, wait_until

from proxy.config import Config
from proxy.exchange import Abort, Exchange
from proxy.logs import (
    access_fields,
    json_access_line,
    json_line,
    redact,
    remember_secret,
    text_line,
)
from proxy.tokens import RedisTokenStore, StoredPair

Spawn = Callable[..., Awaitable[ProxyProcess]]


def log_lines(replica: ProxyProcess) -> list[dict[str, Any]]:
    lines = replica.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("sending Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
        ("Authorization: API-Key 0123456789abcdef", "0123456789abcdef"),
        ("body grant_type=refresh_token&refresh_token=r-123456&scope=x", "r-123456"),
        ("client_id=a&client_secret=s3cr3t-value", "s3cr3t-value"),
        ('{"access_token": "at-987654", "expires_in": 3600}', "at-987654"),
        ("/_proxy/oauth/callback?code=c0de-42&state=x", "c0de-42"),
        ("connecting to redis://:hunter2-pw@redis:6379/0", "hunter2-pw"),
    ],
)
def test_anything_shaped_like_a_credential_is_masked(line: str, secret: str) -> None:
    assert secret not in redact(line)
    assert "[redacted]" in redact(line)


#: The proxy's error codes (contract section 6, and the ones it adds).
ERROR_CODES = [
    "bad_request",
    "admin_authentication_required",
    "forbidden",
    "not_found",
    "request_timeout",
    "body_too_large",
    "expectation_failed",
    "upstream_unreachable",
    "authorization_required",
    "refresh_failed",
    "overloaded",
    "token_store_unavailable",
    "upstream_timeout",
    "internal_error",
]


@pytest.mark.parametrize("line_format", [json_line, text_line], ids=["json", "text"])
@pytest.mark.parametrize("error_code", ERROR_CODES)
def test_error_codes_stay_readable_where_authorization_codes_are_masked(
    line_format: Callable[..., str], error_code: str
) -> None:
    """Both are a ``code``: the proxy's error code says which error happened, an OAuth
    authorization code (long, random) would connect whoever reads it."""
    fields = {
        "event": "proxy_error",
        "code": error_code,
        "detail": '/_proxy/oauth/callback?code=Q3x7-k9vLm2&state=s1 {"code": "Zr8p-Yw4q"}',
    }
    line = redact(line_format(0.0, "warning", "pandadoc_proxy.errors", "proxy error", fields))
    assert "Q3x7-k9vLm2" not in line
    assert "Zr8p-Yw4q" not in line
    assert line.count("[redacted]") == 2
    if line_format is json_line:
        assert json.loads(line)["code"] == error_code
    else:
        assert f"code={error_code} " in line


def test_a_credential_inside_a_string_of_a_json_line_is_masked_and_the_line_stays_json() -> None:
    body = '{"access_token": "at-nested-0042", "refresh_token": "rt-nested-0042"}'
    fields = {"detail": f"token endpoint said {body}", "url": "/cb?code=c-nested-0042"}
    line = redact(json_line(0.0, "warning", "pandadoc_proxy.tokens", "odd answer", fields))
    assert "nested-0042" not in line
    assert json.loads(line)["detail"] == (
        'token endpoint said {"access_token": "[redacted]", "refresh_token": "[redacted]"}'
    )


def test_a_code_that_merely_resembles_an_error_code_is_masked() -> None:
    for near in ("Upstream_Unreachable", "upstream_unreachable2", "upstream"):
        assert near not in redact(f'{{"code":"{near}"}} and code={near}&state=x')


async def test_a_proxy_error_line_says_which_error_it_was(
    spawn_proxy: Spawn, emulator: Emulator, redis_url: str, key_prefix: str, connected: StoredPair
) -> None:
    # PandaDoc unreachable: nothing listens on the upstream's port.
    config = proxy_config(
        emulator.url,
        redis_url,
        key_prefix,
        upstream={"base_url": f"http://127.0.0.1:{free_port()}"},
    )
    replica = await spawn_proxy(config)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/public/v1/documents") as response,
    ):
        assert response.status == 502
    await replica.stop()
    errors = [line for line in log_lines(replica) if line.get("event") == "proxy_error"]
    assert [line["code"] for line in errors] == ["upstream_unreachable"]


def test_remembered_secrets_are_masked_wherever_they_appear() -> None:
    remember_secret("plain-token-without-a-label")
    assert "plain-token" not in redact("oops: plain-token-without-a-label in a message")


def test_ordinary_lines_are_left_alone() -> None:
    line = "GET /public/v1/documents 200 postcode=12345 duration_ms=3.1"
    assert redact(line) == line


async def test_every_request_gets_one_access_line_with_what_an_operator_needs(
    spawn_proxy: Spawn, config: Config, connected: StoredPair, emulator: Emulator
) -> None:
    replica = await spawn_proxy(config)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{replica.url}/test/echo?secret_query=1", headers={"X-Request-Id": "trace-77"}
        ) as response:
            assert response.status == 200
        emulator.state.expire_access_tokens()
        async with session.get(f"{replica.url}/test/echo") as response:
            assert response.status == 200
    await replica.stop()
    access = [
        line
        for line in log_lines(replica)
        if line.get("event") == "access" and line["path"] == "/test/echo"
    ]
    assert len(access) == 2
    first, second = access
    assert first["request_id"] == "trace-77"
    assert (first["method"], first["path"], first["status"]) == ("GET", "/test/echo", 200)
    assert "secret_query" not in json.dumps(first)
    assert first["duration_ms"] >= first["upstream_ms"] > 0
    assert first["replayed"] is False
    assert second["replayed"] is True
    assert first["replica"]


async def test_a_request_the_http_parser_refuses_still_gets_an_access_line(
    spawn_proxy: Spawn, config: Config
) -> None:
    replica = await spawn_proxy(config)
    answer = await raw_exchange(
        replica.port, b"GET /refused HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    )
    assert answer.split(b" ")[1] == b"400"
    await replica.stop()
    refused = [
        (line["method"], line["status"])
        for line in log_lines(replica)
        if line.get("event") == "access" and line["status"] != 200  # Not the health probes.
    ]
    # aiohttp's parser gave up before the method and path were known.
    assert refused == [("UNKNOWN", 400)]


async def test_no_token_code_or_secret_is_ever_written_to_the_logs(
    spawn_proxy: Spawn,
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
) -> None:
    """The whole life of a deployment (connect, serve, refresh, fail, lose authorization) with
    debug logging; then every secret that existed is searched for in everything it wrote."""
    port = free_port()
    config = proxy_config(
        emulator.url,
        redis_url,
        key_prefix,
        oauth={"redirect_uri": f"http://127.0.0.1:{port}/_proxy/oauth/callback"},
        admin={"password": "admin-pw-0451"},
        logging={"level": "debug"},
        tokens={"refresh_backoff_s": 0.05, "failed_refresh_cooldown_s": 0.1},
    )
    secrets: set[str] = {"emulator-secret", "admin-pw-0451"}
    replica = await spawn_proxy(config, port=port)
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:admin-pw-0451").decode()}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        # Connect, as an operator does in a browser.
        async with session.get(
            f"{replica.url}/_proxy/oauth/authorize", headers=auth, allow_redirects=False
        ) as response:
            consent = response.headers["Location"]
        fields = {k: v[0] for k, v in parse_qs(urlsplit(consent).query).items()}
        async with session.post(
            consent.split("?")[0], data={**fields, "decision": "approve"}, allow_redirects=False
        ) as response:
            callback = response.headers["Location"]
        secrets.add(parse_qs(urlsplit(callback).query)["code"][0])
        async with session.get(callback, headers=auth) as response:
            assert response.status == 200

        async def collect_pair() -> None:
            pair = await store.load()
            assert pair is not None
            secrets.update({pair.access_token, pair.refresh_token})

        await collect_pair()
        # Serve, refresh after a 401, survive a failing token endpoint.
        for _ in range(3):
            async with session.get(f"{replica.url}/public/v1/documents") as response:
                assert response.status == 200
        emulator.state.fail_token_endpoint(times=1)
        emulator.state.expire_access_tokens()
        async with session.get(f"{replica.url}/public/v1/documents") as response:
            assert response.status == 200
        await collect_pair()
        # Lose the authorization for good.
        emulator.state.revoke_refresh_tokens()
        emulator.state.expire_access_tokens()
        async with session.get(f"{replica.url}/public/v1/documents") as response:
            assert response.status == 503
        await collect_pair()
    assert await replica.stop() == 0

    written = replica.log_path.read_text()
    events = {line.get("event") for line in log_lines(replica)}
    assert {"connected", "refresh_retry", "refresh_ok", "authorization_lost"} <= events
    leaked = sorted(secret for secret in secrets if secret in written)
    assert leaked == [], f"{len(leaked)} secret(s) found in the logs"


async def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(
    spawn_proxy: Spawn, config: Config, connected: StoredPair, emulator: Emulator
) -> None:
    replica = await spawn_proxy(config)
    async with aiohttp.ClientSession() as session:
        before = emulator.state.api_requests
        slow = asyncio.ensure_future(session.get(f"{replica.url}/test/slow?delay=1.5"))
        await wait_until(lambda: emulator.state.api_requests > before)  # in flight upstream
        replica.process.send_signal(signal.SIGTERM)
        response = await slow
        assert response.status == 200
        response.release()
        # New connections are refused once shutdown has begun.
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{replica.url}/_proxy/health") as late:
                await late.read()
    assert await replica.process.wait() == 0


def test_a_line_the_fast_encoder_refuses_is_still_written() -> None:
    # orjson refuses lone surrogates (undecodable bytes); the standard library escapes them.
    line = json_line(0.0, "info", "pandadoc_proxy.access", "GET", {"path": "/a\udcffb"})
    assert json.loads(line)["path"] == "/a\udcffb"


@pytest.mark.parametrize(
    "abort",
    [
        pytest.param(None, id="a complete exchange"),
        pytest.param(Abort("upload", 5_242_880, 0), id="an exchange the client aborted"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/public/v1/documents", '/odd "quoted" \\ path/\u00e9\u2603', "/a\udcffb", "/\x01\x7f"]
)
def test_the_hand_written_access_line_is_the_json_document_of_its_fields(
    path: str, abort: Abort | None
) -> None:
    exchange = Exchange("rid-1", started=perf_counter() - 0.25, upstream_seconds=0.125)
    exchange.replayed = True
    exchange.abort = abort
    fast = json.loads(json_access_line(1_700_000_000.5, "GET", path, 201, exchange, "host-1"))
    fields = access_fields("GET", path, 201, exchange, "host-1")
    slow = json.loads(
        json_line(1_700_000_000.5, "info", "pandadoc_proxy.access", f"GET {path} 201", fields)
    )
    assert fast.pop("duration_ms") == pytest.approx(slow.pop("duration_ms"), abs=50)
    assert fast == slow


def test_a_secret_in_a_path_is_masked_in_the_access_line() -> None:
    remember_secret("tok-in-the-path-0042")
    exchange = Exchange("rid-2", started=perf_counter())
    line = json_access_line(0.0, "GET", "/x/tok-in-the-path-0042/y", 200, exchange, "r")
    assert "tok-in-the-path-0042" not in line
    assert json.loads(line)["path"] == "/x/[redacted]/y"
