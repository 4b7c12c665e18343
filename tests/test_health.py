"""Contract section 3: liveness, readiness and metrics answer everyone who reaches the listener."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, free_port, proxy_config, wait_until

from proxy import create_app
from proxy.metrics import LockFreeHistogram
from proxy.tokens import StoredPair

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def test_health_is_ok_while_the_process_serves(proxy: Client) -> None:
    response = await proxy.get("/_proxy/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_health_is_ok_even_without_redis(
    aiohttp_client: MakeClient, emulator: Emulator, key_prefix: str
) -> None:
    config = proxy_config(emulator.url, f"redis://127.0.0.1:{free_port()}/0", key_prefix)
    proxy = await aiohttp_client(create_app(config))
    assert (await proxy.get("/_proxy/health")).status == 200


async def test_ready_when_redis_answers_and_a_token_is_stored(
    proxy: Client, connected: StoredPair
) -> None:
    response = await proxy.get("/_proxy/ready")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ready"
    assert body["redis"]["ok"] is True
    assert body["token"]["ok"] is True
    assert connected.access_token not in await response.text()


async def test_not_ready_without_a_token_says_so(aiohttp_client: MakeClient, config: Any) -> None:
    proxy = await aiohttp_client(create_app(config))
    response = await proxy.get("/_proxy/ready")
    body = await response.json()
    assert response.status == 503
    assert body["redis"]["ok"] is True
    assert body["token"]["ok"] is False
    assert "connect" in body["token"]["error"]


async def test_not_ready_without_redis_says_so(
    aiohttp_client: MakeClient, emulator: Emulator, key_prefix: str
) -> None:
    config = proxy_config(emulator.url, f"redis://127.0.0.1:{free_port()}/0", key_prefix)
    proxy = await aiohttp_client(create_app(config))
    response = await proxy.get("/_proxy/ready")
    body = await response.json()
    assert response.status == 503
    assert body["redis"]["ok"] is False
    assert body["token"]["ok"] is False


async def test_metrics_count_forwarded_requests_by_method_and_status_class(proxy: Client) -> None:
    await proxy.get("/test/status/404")
    response = await proxy.get("/_proxy/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'pandadoc_proxy_requests_total{method="GET",status_class="4xx"} 1.0' in text


async def test_metrics_time_pandadoc_and_the_proxys_own_share_of_each_request(
    proxy: Client,
) -> None:
    await proxy.get("/test/echo")
    text = await (await proxy.get("/_proxy/metrics")).text()
    assert "pandadoc_proxy_upstream_seconds_count 1.0" in text
    assert "pandadoc_proxy_added_seconds_count 1.0" in text
    assert 'pandadoc_proxy_authorization_state{state="connected"} 1.0' in text


def test_a_latency_on_a_bucket_bound_counts_in_that_bucket() -> None:
    histogram = LockFreeHistogram((0.1, 1.0))
    for value in (0.1, 0.5, 1.0, 3.0):
        histogram.observe(value)
    family = histogram.family("h", "help")
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "h_bucket"}
    assert buckets == {"0.1": 1, "1.0": 3, "+Inf": 4}
    assert [s.value for s in family.samples if s.name == "h_sum"] == [4.6]


async def test_metrics_show_a_request_in_flight_while_pandadoc_works_on_it(
    proxy: Client,
) -> None:
    slow = asyncio.create_task(proxy.get("/test/slow?delay=1"))

    async def in_flight() -> bool:
        text = await (await proxy.get("/_proxy/metrics")).text()
        return "pandadoc_proxy_in_flight_requests 2.0" in text  # The slow one and the scrape.

    await wait_until(in_flight)
    assert (await slow).status == 200
    text = await (await proxy.get("/_proxy/metrics")).text()
    assert "pandadoc_proxy_in_flight_requests 1.0" in text  # Only the scrape itself.
