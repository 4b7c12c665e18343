"""API-key mode: PandaDoc's legacy ``Authorization: API-Key <key>``, no OAuth and no refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, free_port

from proxy import create_app
from proxy.config import parse_config

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def keyed(
    aiohttp_client: Callable[..., Awaitable[Client]], emulator: Emulator, key_prefix: str
) -> Client:
    """A replica in API-key mode, with no OAuth credentials and no Redis reachable at all."""
    emulator.settings.api_key = "sandbox-key-123"
    config = parse_config(
        {
            "auth": {"mode": "api_key", "api_key": "sandbox-key-123"},
            "upstream": {"base_url": emulator.url},
            "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "key_prefix": key_prefix},
        }
    )
    return await aiohttp_client(create_app(config))


async def test_requests_carry_the_api_key(keyed: Client) -> None:
    response = await keyed.get("/test/echo", headers={"Authorization": "Bearer client-guess"})
    seen = await response.json()
    assert response.status == 200
    assert [v for k, v in seen["headers"] if k.lower() == "authorization"] == [
        "API-Key sandbox-key-123"
    ]


async def test_pandadoc_routes_work_without_redis(keyed: Client) -> None:
    assert (await keyed.get("/public/v1/documents")).status == 200


async def test_a_401_passes_through_and_nothing_is_refreshed(
    keyed: Client, emulator: Emulator
) -> None:
    emulator.settings.api_key = "rotated-elsewhere"
    response = await keyed.get("/public/v1/documents")
    assert response.status == 401
    assert "X-Proxy-Error" not in response.headers
    assert sum(emulator.state.token_calls.values()) == 0


async def test_ready_needs_neither_redis_nor_a_stored_token(keyed: Client) -> None:
    response = await keyed.get("/_proxy/ready")
    assert response.status == 200
    assert "sandbox-key-123" not in await response.text()


async def test_the_status_page_says_api_key_mode_and_never_shows_the_key(keyed: Client) -> None:
    page = await (await keyed.get("/_proxy/")).text()
    assert "API-key mode" in page
    assert "sandbox-key-123" not in page


async def test_the_oauth_routes_are_off(keyed: Client) -> None:
    response = await keyed.get("/_proxy/oauth/authorize", allow_redirects=False)
    assert response.status == 404
