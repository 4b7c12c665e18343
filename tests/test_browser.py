"""End to end, as a person does it: connect an unconnected proxy to PandaDoc in a real browser.

Headless Chromium opens the proxy's status page, presses "Connect to PandaDoc", approves on the
(emulated) PandaDoc consent page, and lands on the proxy's callback page. Then, outside the
browser, a plain request through the proxy works. Screenshots of every step are left in
``test-artifacts/browser/``; ``docs/images/`` holds copies for the README.

Needs ``/usr/bin/chromium`` and Playwright: ``.ci/install-browser``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from browser import artifact, chromium_page, clear_artifacts, require_browser
from conftest import Emulator, free_port, proxy_config

from proxy import create_app
from proxy.tokens import RedisTokenStore

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

pytestmark = pytest.mark.browser

SCREENSHOTS = (
    "01-status-not-connected.png",
    "02-pandadoc-authorize.png",
    "03-connected.png",
    "04-status-connected.png",
    "05-callback-reloaded.png",
)
DENIED = "06-pandadoc-denied.png"
OTHER_HOST = "07-status-on-another-host.png"

NOT_CONNECTED = re.compile(r"not connected", re.IGNORECASE)
CONNECT = "Connect to PandaDoc"


def connect_button(page: Page) -> Locator:
    """The status page's "Connect to PandaDoc": a link or a button, whichever the page uses."""
    return page.get_by_role("link", name=CONNECT).or_(page.get_by_role("button", name=CONNECT))


async def start_unconnected_proxy(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
) -> str:
    """A proxy on a known port (PandaDoc must know its callback URL), with no token stored;
    its base URL."""
    port = free_port()
    proxy_url = f"http://127.0.0.1:{port}"
    oauth = {"redirect_uri": f"{proxy_url}/_proxy/oauth/callback"}
    config = proxy_config(emulator.url, redis_url, key_prefix, oauth=oauth)
    await aiohttp_server(create_app(config), port=port)
    assert emulator.settings.auto_approve is False  # the consent page is part of the flow
    assert await store.load() is None  # not connected
    return proxy_url


async def test_connect_to_pandadoc_in_a_browser(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
) -> None:
    require_browser()
    from playwright.async_api import expect

    clear_artifacts("connect", *SCREENSHOTS)
    proxy_url = await start_unconnected_proxy(
        aiohttp_server, emulator, redis_url, key_prefix, store
    )
    redirect_uri = f"{proxy_url}/_proxy/oauth/callback"

    async with chromium_page("connect") as page:
        # 1. The status page says the proxy is not connected and offers to connect it.
        response = await page.goto(f"{proxy_url}/_proxy/")
        assert response is not None
        assert response.status == 200, await response.text()
        await expect(page.locator("body")).to_contain_text(NOT_CONNECTED)
        connect = connect_button(page)
        await expect(connect).to_be_visible()
        await page.screenshot(path=artifact(SCREENSHOTS[0]))

        # 2. The button leads through the proxy's authorize route (a 302) to PandaDoc's consent
        #    page, asking for this proxy's client id and callback.
        async with page.expect_navigation(url=f"{emulator.url}/oauth2/authorize?**") as nav:
            await connect.click()
        consent = await nav.value
        assert consent is not None
        assert consent.status == 200
        hop = consent.request.redirected_from
        assert hop is not None, "the consent page was not reached through a redirect"
        assert urlsplit(hop.url).path == "/_proxy/oauth/authorize"
        hop_response = await hop.response()
        assert hop_response is not None
        assert hop_response.status == 302
        query = parse_qs(urlsplit(page.url).query)
        assert query["client_id"] == ["emulator-client"]
        assert query["redirect_uri"] == [redirect_uri]
        assert query["response_type"] == ["code"]
        assert query["scope"][0]
        assert query["state"][0]
        await expect(page.get_by_role("heading", name="Authorize emulator-client")).to_be_visible()
        await page.screenshot(path=artifact(SCREENSHOTS[1]))

        # 3. Approving sends the browser back to the proxy's callback, which says it is connected.
        async with page.expect_navigation(url=f"{redirect_uri}?**") as nav:
            await page.get_by_role("button", name="Authorize", exact=True).click()
        callback = await nav.value
        assert callback is not None
        assert callback.status == 200, await callback.text()
        await expect(page.locator("body")).to_contain_text("Connected")
        await expect(page.locator("body")).not_to_contain_text(NOT_CONNECTED)
        await page.screenshot(path=artifact(SCREENSHOTS[2]))
        callback_url = page.url

        # 4. The code was exchanged once and the pair stored: plain requests now go through.
        assert emulator.state.token_calls["authorization_code"] == 1
        stored = await store.load()
        assert stored is not None
        assert stored.usable
        async with aiohttp.ClientSession(proxy_url) as http:
            async with http.get("/public/v1/documents") as documents:
                assert documents.status == 200, await documents.text()
                assert "results" in await documents.json()
            async with http.get("/_proxy/ready") as ready:
                assert ready.status == 200, await ready.text()
            async with http.get("/_proxy/") as status:
                assert status.status == 200
                text = await status.text()
                assert "Connected" in text
                assert not NOT_CONNECTED.search(text)

        # ... and the status page in the browser says so too.
        response = await page.goto(f"{proxy_url}/_proxy/")
        assert response is not None
        assert response.status == 200
        await expect(page.locator("body")).to_contain_text("Connected")
        await expect(page.locator("body")).not_to_contain_text(NOT_CONNECTED)
        await page.screenshot(path=artifact(SCREENSHOTS[3]))

        # 5. Reloading the callback page (its state is single-use) is refused and changes nothing.
        response = await page.goto(callback_url)
        assert response is not None
        assert response.status == 400, await response.text()
        await page.screenshot(path=artifact(SCREENSHOTS[4]))
        assert emulator.state.token_calls["authorization_code"] == 1
        again = await store.load()
        assert again is not None
        assert again.version == stored.version


async def test_denying_on_pandadoc_leaves_the_proxy_unconnected(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
) -> None:
    require_browser()
    from playwright.async_api import expect

    clear_artifacts("deny", DENIED)
    proxy_url = await start_unconnected_proxy(
        aiohttp_server, emulator, redis_url, key_prefix, store
    )

    async with chromium_page("deny") as page:
        await page.goto(f"{proxy_url}/_proxy/")
        await connect_button(page).click()
        await page.wait_for_url(f"{emulator.url}/oauth2/authorize?**")

        async with page.expect_navigation(url=f"{proxy_url}/_proxy/oauth/callback?**") as nav:
            await page.get_by_role("button", name="Deny", exact=True).click()
        callback = await nav.value
        assert callback is not None
        assert 400 <= callback.status < 500, await callback.text()
        await page.screenshot(path=artifact(DENIED))

        # Nothing was exchanged or stored, and the status page still offers to connect.
        assert emulator.state.token_calls["authorization_code"] == 0
        assert await store.load() is None
        await page.goto(f"{proxy_url}/_proxy/")
        await expect(page.locator("body")).to_contain_text(NOT_CONNECTED)
        await expect(connect_button(page)).to_be_visible()


async def test_connecting_from_a_page_opened_on_another_host_still_works(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
) -> None:
    # Issue 17: the demo's status page opened at localhost while the redirect URI names
    # 127.0.0.1; the cookie set for localhost never came back, and the callback refused.
    require_browser()
    from playwright.async_api import expect

    clear_artifacts("other-host", OTHER_HOST)
    proxy_url = await start_unconnected_proxy(
        aiohttp_server, emulator, redis_url, key_prefix, store
    )
    as_localhost = proxy_url.replace("127.0.0.1", "localhost")
    async with chromium_page("other-host") as page:
        await page.goto(f"{as_localhost}/_proxy/")
        await expect(page.locator("body")).to_contain_text("Connect from")
        await page.screenshot(path=artifact(OTHER_HOST))
        await connect_button(page).click()
        await page.wait_for_url(f"{emulator.url}/oauth2/authorize?**")
        async with page.expect_navigation(url=f"{proxy_url}/_proxy/oauth/callback?**") as nav:
            await page.get_by_role("button", name="Authorize", exact=True).click()
        callback = await nav.value
        assert callback is not None
        assert callback.status == 200, await callback.text()
    stored = await store.load()
    assert stored is not None
    assert stored.usable
