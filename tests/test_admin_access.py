"""Contract section 3: who may use the admin pages, and who may use the rest."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, proxy_config

from proxy import create_app
from proxy.admin.protection import is_loopback_address

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN_ROUTES = ["/_proxy/", "/_proxy/oauth/authorize", "/_proxy/oauth/callback?state=x&code=y"]
OPEN_ROUTES = ["/_proxy/health", "/_proxy/ready", "/_proxy/metrics"]


@pytest.fixture
async def guarded(
    aiohttp_client: MakeClient, emulator: Emulator, redis_url: str, key_prefix: str
) -> Client:
    """A replica whose admin pages need a password."""
    config = proxy_config(
        emulator.url, redis_url, key_prefix, admin={"username": "ops", "password": "s3cret-pw"}
    )
    return await aiohttp_client(create_app(config))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.7", False),
        ("192.168.1.20", False),
        ("203.0.113.5", False),
        ("::ffff:10.0.0.7", False),
        ("2001:db8::1", False),
        ("", False),
        ("localhost", False),  # a name is not an address: peers are always addresses
    ],
)
def test_only_loopback_peer_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback_address(host) is loopback


@pytest.mark.parametrize("route", ADMIN_ROUTES)
async def test_without_a_password_admin_pages_answer_local_clients(
    aiohttp_client: MakeClient, config: Any, route: str
) -> None:
    proxy = await aiohttp_client(create_app(config))
    response = await proxy.get(route, allow_redirects=False)
    assert response.status not in (401, 403)


@pytest.mark.parametrize("route", ADMIN_ROUTES)
async def test_with_a_password_admin_pages_need_basic_auth_even_locally(
    guarded: Client, route: str
) -> None:
    response = await guarded.get(route, allow_redirects=False)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.headers["X-Proxy-Error"] == "admin_authentication_required"


async def test_a_wrong_password_is_refused(guarded: Client) -> None:
    for user, password in (("ops", "wrong"), ("admin", "s3cret-pw"), ("ops", "")):
        response = await guarded.get("/_proxy/", headers=basic(user, password))
        assert response.status == 401


async def test_a_malformed_authorization_header_is_refused(guarded: Client) -> None:
    for header in (
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer s3cret-pw",
        "Basic",
    ):
        response = await guarded.get("/_proxy/", headers={"Authorization": header})
        assert response.status == 401


async def test_the_right_password_opens_the_admin_pages(guarded: Client) -> None:
    response = await guarded.get("/_proxy/", headers=basic("ops", "s3cret-pw"))
    assert response.status == 200
    assert "pandadoc-proxy" in await response.text()


async def test_forwarded_for_headers_never_stand_in_for_the_password(guarded: Client) -> None:
    response = await guarded.get(
        "/_proxy/",
        headers={"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1", "X-Real-IP": "::1"},
    )
    assert response.status == 401


@pytest.mark.parametrize("route", OPEN_ROUTES)
async def test_health_ready_and_metrics_need_no_password(guarded: Client, route: str) -> None:
    response = await guarded.get(route)
    assert response.status in (200, 503)  # ready is 503 here: no token stored
    assert "WWW-Authenticate" not in response.headers


async def test_the_admin_password_never_appears_in_pages_or_errors(guarded: Client) -> None:
    ok = await guarded.get("/_proxy/", headers=basic("ops", "s3cret-pw"))
    refused = await guarded.get("/_proxy/")
    for response in (ok, refused):
        assert "s3cret-pw" not in await response.text()
