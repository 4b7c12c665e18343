"""Contract section 3: the status page and the "Connect to PandaDoc" authorization-code flow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import Emulator, free_port, proxy_config

from proxy import create_app
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair

Client = TestClient[web.Request, web.Application]


class Browser:
    """A proxy replica reachable at a known port, and a client that keeps cookies like a browser."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.base = f"http://127.0.0.1:{server.port}"

    async def get(self, url: str) -> aiohttp.ClientResponse:
        if url.startswith("/"):
            url = self.base + url
        response = await self.session.get(url, allow_redirects=False)
        await response.read()
        return response

    async def start_connect(self) -> str:
        """Click "Connect": returns PandaDoc's consent URL the proxy redirected to."""
        response = await self.get("/_proxy/oauth/authorize")
        assert response.status == 302
        return response.headers["Location"]


MakeBrowser = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def make_browser(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
) -> Any:
    sessions: list[aiohttp.ClientSession] = []

    async def make(redirect_port: int | None = None, **sections: dict[str, Any]) -> Browser:
        """A replica; its redirect_uri is its own callback, or that of the replica on
        ``redirect_port`` (replicas behind one load balancer share one redirect_uri)."""
        port = free_port()
        sections.setdefault("oauth", {})
        callback_port = redirect_port or port
        sections["oauth"]["redirect_uri"] = (
            f"http://127.0.0.1:{callback_port}/_proxy/oauth/callback"
        )
        config = proxy_config(emulator.url, redis_url, key_prefix, **sections)
        server = await aiohttp_server(create_app(config), port=port)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return Browser(server, session)

    yield make
    for session in sessions:
        await session.close()


async def approve(browser: Browser, consent_url: str, decision: str = "approve") -> str:
    """At PandaDoc (the emulator), press Authorize or Deny; returns the callback URL."""
    fields = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
    fields["decision"] = decision
    response = await browser.session.post(
        consent_url.split("?")[0], data=fields, allow_redirects=False
    )
    assert response.status == 302
    return response.headers["Location"]


# --- the status page ---------------------------------------------------------------------------


async def test_the_status_page_says_not_connected_and_offers_to_connect(
    make_browser: MakeBrowser,
) -> None:
    browser = await make_browser()
    response = await browser.get("/_proxy/")
    page = await response.text()
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "Not connected" in page
    assert "Connect to PandaDoc" in page
    assert "/_proxy/oauth/authorize" in page


async def test_the_status_page_opened_on_another_host_connects_from_the_redirect_uri_s_host(
    make_browser: MakeBrowser,
) -> None:
    # The redirect URI names 127.0.0.1; the page is opened as localhost (as the demo's curl
    # lines say). The state cookie set on localhost would never reach 127.0.0.1's callback.
    browser = await make_browser()
    response = await browser.get(f"http://localhost:{browser.server.port}/_proxy/")
    page = await response.text()
    assert response.status == 200
    assert "Connect from" in page
    assert f"href='{browser.base}/_proxy/oauth/authorize'" in page
    same_host = await (await browser.get("/_proxy/")).text()
    assert "Connect from" not in same_host
    assert "href='/_proxy/oauth/authorize'" in same_host


async def test_a_callback_without_the_sign_in_cookie_says_where_to_start_again(
    make_browser: MakeBrowser, store: RedisTokenStore
) -> None:
    browser = await make_browser()
    # Started on localhost: the cookie belongs to localhost, PandaDoc returns to 127.0.0.1.
    started = await browser.get(f"http://localhost:{browser.server.port}/_proxy/oauth/authorize")
    assert started.status == 302
    callback = await approve(browser, started.headers["Location"])
    response = await browser.get(callback)
    page = await response.text()
    assert response.status == 400
    assert "did not send back the sign-in cookie" in page
    assert f"{browser.base}/_proxy/" in page
    assert await store.load() is None


async def test_the_status_page_shows_expiry_and_last_refresh_but_never_the_token(
    make_browser: MakeBrowser, connected: StoredPair
) -> None:
    browser = await make_browser()
    page = await (await browser.get("/_proxy/")).text()
    assert "Connected" in page
    assert "Reconnect" in page
    assert "expires" in page
    assert "by test" in page  # who stored the pair
    assert connected.access_token not in page
    assert connected.refresh_token not in page


async def test_the_status_page_shows_when_authorization_is_lost(
    make_browser: MakeBrowser, store: RedisTokenStore, connected: StoredPair
) -> None:
    await store.mark_authorization_lost(connected.version, "refresh token rejected")
    page = await (await (await make_browser()).get("/_proxy/")).text()
    assert "Authorization required" in page
    assert "Connect to PandaDoc" in page


async def test_the_status_page_shows_when_refreshing_fails(
    make_browser: MakeBrowser, store: RedisTokenStore, connected: StoredPair
) -> None:
    await store.record_refresh_failure(connected.version, "unavailable")
    page = await (await (await make_browser()).get("/_proxy/")).text()
    assert "Refresh failing" in page


# --- the code flow -----------------------------------------------------------------------------


async def test_authorize_redirects_to_pandadoc_with_the_contracts_parameters(
    make_browser: MakeBrowser, emulator: Emulator
) -> None:
    browser = await make_browser()
    consent = await browser.start_connect()
    parts = urlsplit(consent)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{emulator.url}/oauth2/authorize"
    assert "scope=read+write" in parts.query.split("&")
    query = parse_qs(parts.query)
    assert query["client_id"] == ["emulator-client"]
    assert query["redirect_uri"] == [f"{browser.base}/_proxy/oauth/callback"]
    assert query["response_type"] == ["code"]
    assert len(query["state"][0]) >= 32


async def test_every_authorize_makes_a_new_state(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    first = parse_qs(urlsplit(await browser.start_connect()).query)["state"]
    second = parse_qs(urlsplit(await browser.start_connect()).query)["state"]
    assert first != second


async def test_approving_at_pandadoc_connects_the_proxy(
    make_browser: MakeBrowser, store: RedisTokenStore, emulator: Emulator
) -> None:
    browser = await make_browser()
    assert (await browser.get("/public/v1/documents")).status == 503
    callback = await approve(browser, await browser.start_connect())
    response = await browser.get(callback)
    assert response.status == 200
    assert "Connected to PandaDoc" in await response.text()
    stored = await store.load()
    assert stored is not None
    assert stored.usable
    assert emulator.state.token_calls["authorization_code"] == 1
    assert (await browser.get("/public/v1/documents")).status == 200


async def test_a_reused_state_gets_400_and_changes_nothing(
    make_browser: MakeBrowser, store: RedisTokenStore, emulator: Emulator
) -> None:
    browser = await make_browser()
    consent = await browser.start_connect()
    callback = await approve(browser, consent)
    assert (await browser.get(callback)).status == 200
    first = await store.load()
    # The same state again, with a fresh code for it.
    again = await approve(browser, consent)
    assert (await browser.get(again)).status == 400
    assert await store.load() == first
    assert emulator.state.token_calls["authorization_code"] == 1


async def test_a_forged_state_gets_400_and_stores_nothing(
    make_browser: MakeBrowser, store: RedisTokenStore, emulator: Emulator
) -> None:
    browser = await make_browser()
    await browser.start_connect()
    response = await browser.get("/_proxy/oauth/callback?code=abc&state=forged-by-an-attacker")
    assert response.status == 400
    assert await store.load() is None
    assert emulator.state.token_calls["authorization_code"] == 0


async def test_a_state_used_from_another_browser_gets_400(
    make_browser: MakeBrowser, store: RedisTokenStore
) -> None:
    victim = await make_browser()
    callback = await approve(victim, await victim.start_connect())
    # Same replica, but a browser without the cookie the flow was started with.
    async with aiohttp.ClientSession() as other:
        response = await other.get(callback, allow_redirects=False)
        assert response.status == 400
    assert await store.load() is None


async def test_a_state_issued_by_one_replica_is_accepted_by_another(
    make_browser: MakeBrowser, store: RedisTokenStore
) -> None:
    first = await make_browser()
    second = await make_browser(redirect_port=first.server.port)
    callback = await approve(first, await first.start_connect())
    # The callback lands on the second replica, in the same browser.
    landed = callback.replace(first.base, second.base)
    for cookie in first.session.cookie_jar:
        second.session.cookie_jar.update_cookies(
            {cookie.key: cookie.value},
            response_url=aiohttp.client.URL(second.base + "/_proxy/oauth/"),
        )
    assert (await second.get(landed)).status == 200
    assert await store.load() is not None


async def test_denying_at_pandadoc_gets_a_clear_page_and_stores_nothing(
    make_browser: MakeBrowser, store: RedisTokenStore
) -> None:
    browser = await make_browser()
    callback = await approve(browser, await browser.start_connect(), decision="deny")
    response = await browser.get(callback)
    assert response.status == 400
    assert "access_denied" in await response.text()
    assert await store.load() is None


async def test_a_code_pandadoc_refuses_gets_a_clear_page_and_stores_nothing(
    make_browser: MakeBrowser, store: RedisTokenStore
) -> None:
    browser = await make_browser()
    consent = await browser.start_connect()
    state = parse_qs(urlsplit(consent).query)["state"][0]
    response = await browser.get(f"/_proxy/oauth/callback?code=not-a-real-code&state={state}")
    assert response.status == 400
    assert "invalid_grant" in await response.text()
    assert await store.load() is None


async def test_connecting_again_ends_authorization_required(
    make_browser: MakeBrowser, store: RedisTokenStore, connected: StoredPair
) -> None:
    await store.mark_authorization_lost(connected.version, "refresh token rejected")
    browser = await make_browser(redis={"token_cache_s": 0})
    assert (await browser.get("/public/v1/documents")).status == 503
    assert (await browser.get(await approve(browser, await browser.start_connect()))).status == 200
    stored = await store.load()
    assert stored is not None
    assert stored.usable
    assert stored.version == connected.version + 1
    assert (await browser.get("/public/v1/documents")).status == 200


async def test_a_pair_stored_by_token_set_replaces_a_lost_one(
    store: RedisTokenStore, emulator: Emulator, connected: StoredPair
) -> None:
    await store.mark_authorization_lost(connected.version, "refresh token rejected")
    fresh = NewTokens.from_token_response(emulator.state.issue_pair())
    stored = await store.save(fresh, expected_version=None, obtained_by="cli")
    assert stored.usable
