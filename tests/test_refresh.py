"""Contract section 5: refresh on rejection, replay, single flight across replicas, failures.

Replicas here are separate aiohttp apps in the test's process, each with its own Redis pool,
client session, in-process token cache and refresher, all sharing one Redis and one emulator.
``test_refresh_processes.py`` does the same with separate processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, proxy_config, wait_until

from proxy import create_app
from proxy.keys import TOKENS
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Replicas = Callable[..., Awaitable[list[Client]]]

#: Fast retries, so failure tests take fractions of a second.
FAST_FAILURES = {"refresh_backoff_s": 0.05, "failed_refresh_cooldown_s": 0.3}


@pytest.fixture
def replicas(
    aiohttp_client: MakeClient, emulator: Emulator, redis_url: str, key_prefix: str
) -> Replicas:
    """``await replicas(n, tokens={...}, ...)``: n proxies sharing one Redis and one emulator."""

    async def start(count: int, **sections: dict[str, Any]) -> list[Client]:
        sections.setdefault("tokens", {})
        sections["tokens"] = {**FAST_FAILURES, **sections["tokens"]}
        config = proxy_config(emulator.url, redis_url, key_prefix, **sections)
        return [await aiohttp_client(create_app(config)) for _ in range(count)]

    return start


def refreshes(emulator: Emulator) -> int:
    return emulator.state.token_calls["refresh_token"]


async def upload(client: Client, body: bytes) -> dict[str, Any]:
    response = await client.post("/test/upload", data=io.BytesIO(body))
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


# --- refresh and replay ------------------------------------------------------------------------


async def test_a_401_refreshes_the_token_and_replays_the_request(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.expire_access_tokens()
    body = os.urandom(5000)
    assert await upload(proxy, body) == {"sha256": hashlib.sha256(body).hexdigest(), "length": 5000}
    assert refreshes(emulator) == 1
    stored = await store.load()
    assert stored is not None
    assert stored.version == connected.version + 1
    assert stored.refresh_token != connected.refresh_token


async def test_requests_arriving_during_a_renewal_wait_for_it_instead_of_meeting_a_401(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.settings.token_endpoint_delay_s = 1.0
    emulator.state.expire_access_tokens()
    first = asyncio.create_task(proxy.get("/test/echo"))
    # The first request met its 401 and the renewal has reached the token endpoint.
    await wait_until(lambda: refreshes(emulator) == 1)
    later = await asyncio.gather(*(proxy.get("/test/echo") for _ in range(10)))
    assert [response.status for response in later] == [200] * 10
    assert (await first).status == 200
    # Only the first request was sent with the refused token.
    assert emulator.state.unauthorized_responses == 1
    assert refreshes(emulator) == 1


async def test_the_replay_carries_the_same_method_path_headers_and_body(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.expire_access_tokens()
    response = await proxy.request(
        "PATCH", "/test/echo/a%2Fb?x=1&x=2", data=b"payload", headers={"X-Custom": "kept"}
    )
    seen = await response.json()
    assert response.status == 200
    assert seen["method"] == "PATCH"
    assert seen["raw_path"] == "/test/echo/a%2Fb?x=1&x=2"
    assert seen["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert ["X-Custom", "kept"] in seen["headers"]


async def test_a_403_authentication_error_is_treated_like_a_401(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.settings.rejected_token_status = 403
    emulator.state.expire_access_tokens()
    response = await proxy.get("/public/v1/documents")
    assert response.status == 200
    assert refreshes(emulator) == 1


async def test_a_403_authentication_error_passes_through_when_that_trigger_is_off(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1, tokens={"refresh_on_403_authentication_error": False})
    emulator.settings.rejected_token_status = 403
    emulator.state.expire_access_tokens()
    response = await proxy.get("/public/v1/documents")
    assert response.status == 403
    assert (await response.json())["type"] == "authentication_error"
    assert refreshes(emulator) == 0


async def test_a_403_about_permissions_is_passed_through_without_a_refresh(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    response = await proxy.get("/test/status/403")
    assert response.status == 403
    assert await response.json() == {"status": 403}
    assert refreshes(emulator) == 0


async def test_a_second_401_is_passed_to_the_client(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    response = await proxy.get("/test/status/401")
    assert response.status == 401
    assert "X-Proxy-Error" not in response.headers
    assert refreshes(emulator) == 1  # one refresh, one replay, then the client sees the 401


async def listening_with_its_copy(proxy: Client) -> None:
    """Once ``proxy`` hears the store's notices and holds the stored pair, trusting it for
    ``redis.token_cache_s`` (a copy adopted before the subscription was up is trusted for a
    second only)."""
    tokens = proxy.app[TOKENS]
    await wait_until(lambda: tokens.listening)
    await tokens.reload()


async def store_without_notice(store: RedisTokenStore, emulator: Emulator) -> None:
    """Another replica's new pair, written so that no notice announces it (a notice lost on
    the way): replicas still hold the previous pair, as they did before notices existed."""
    current = await store.load()
    assert current is not None
    issued = emulator.state.issue_pair()
    await store.client.hset(
        store.pair_key,
        mapping={
            "access_token": str(issued["access_token"]),
            "refresh_token": str(issued["refresh_token"]),
            "version": current.version + 1,
        },
    )


async def test_a_401_for_a_token_no_longer_stored_is_sent_again_with_the_stored_one(
    replicas: Replicas, emulator: Emulator, connected: StoredPair, store: RedisTokenStore
) -> None:
    (proxy,) = await replicas(1, redis={"token_cache_s": 60})
    assert (await proxy.get("/test/echo")).status == 200
    await listening_with_its_copy(proxy)
    emulator.state.expire_access_tokens()  # The held token is dead...
    await store_without_notice(store, emulator)  # ...and the stored one is another.
    response = await proxy.get("/test/echo")
    assert response.status == 200
    assert refreshes(emulator) == 0  # Sent again with the stored token: no refresh.
    assert emulator.state.unauthorized_responses == 1


async def test_when_the_stored_token_is_rejected_too_it_is_renewed_and_the_request_replayed(
    replicas: Replicas, emulator: Emulator, connected: StoredPair, store: RedisTokenStore
) -> None:
    # Issue 11, trial 1: the held copy was behind, and the stored pair had expired as well.
    # That second rejection is not "a second 401" of the request: no refresh happened yet.
    (proxy,) = await replicas(1, redis={"token_cache_s": 60})
    assert (await proxy.get("/test/echo")).status == 200
    await listening_with_its_copy(proxy)
    await store_without_notice(store, emulator)
    emulator.state.expire_access_tokens()  # Both the held and the stored token are dead.
    response = await proxy.get("/test/echo")
    assert response.status == 200
    assert refreshes(emulator) == 1
    assert emulator.state.unauthorized_responses == 2  # The held token's, the stored one's.


async def test_a_request_makes_at_most_three_attempts_and_one_refresh(
    replicas: Replicas, emulator: Emulator, connected: StoredPair, store: RedisTokenStore
) -> None:
    (proxy,) = await replicas(1, redis={"token_cache_s": 60})
    assert (await proxy.get("/test/echo")).status == 200
    await listening_with_its_copy(proxy)
    await store_without_notice(store, emulator)
    emulator.state.reset_stats()
    response = await proxy.get("/test/status/401")  # PandaDoc rejects every token here.
    assert response.status == 401
    assert "X-Proxy-Error" not in response.headers
    assert emulator.state.api_requests == 3  # The held token, the stored one, the renewed one.
    assert refreshes(emulator) == 1


async def test_a_pair_stored_by_another_replica_is_used_at_once_without_a_401(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    # A would trust its copy for a minute; B's refresh reaches it as a notice.
    a, b = await replicas(2, redis={"token_cache_s": 60})
    assert (await a.get("/test/echo")).status == 200
    await listening_with_its_copy(a)
    emulator.state.expire_access_tokens()
    assert (await b.get("/test/echo")).status == 200
    assert refreshes(emulator) == 1
    held = a.app[TOKENS]
    # Well within the second a copy is trusted for when no notice could be heard.
    await wait_until(lambda: held.held is not None and held.held.version == 2, within_s=0.5)
    response = await a.get("/test/echo")
    assert response.status == 200
    assert refreshes(emulator) == 1
    assert emulator.state.unauthorized_responses == 1  # B's first try only


# --- single flight -----------------------------------------------------------------------------


async def stampede(
    proxies: list[Client], count: int
) -> tuple[list[float], list[tuple[int, str, str]]]:
    """``count`` concurrent requests spread over ``proxies``, GETs and POSTs with bodies.

    Returns each request's latency and (status, expected body hash, received body hash).
    """
    rng = random.Random(7)

    async def one(index: int) -> tuple[float, tuple[int, str, str]]:
        proxy = proxies[index % len(proxies)]
        started = time.perf_counter()
        if index % 2:
            body = rng.randbytes(rng.randint(0, 200_000))
            response = await proxy.post("/test/upload", data=io.BytesIO(body))
            result = await response.json() if response.status == 200 else {"sha256": ""}
            outcome = (response.status, hashlib.sha256(body).hexdigest(), result["sha256"])
        else:
            response = await proxy.get(f"/test/echo?i={index}")
            await response.read()
            outcome = (response.status, "", "")
        return time.perf_counter() - started, outcome

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [latency for latency, _ in results], [outcome for _, outcome in results]


async def test_300_concurrent_requests_on_3_replicas_share_exactly_one_refresh(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    proxies = await replicas(3)
    await stampede(proxies, 300)  # warm-up: connection pools, first allocations
    baseline, _ = await stampede(proxies, 300)
    emulator.state.expire_access_tokens()
    latencies, outcomes = await stampede(proxies, 300)
    assert [status for status, _, _ in outcomes] == [200] * 300
    assert all(expected == received for _, expected, received in outcomes)
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    print(
        f"\nstampede: 300 requests on 3 replicas, {refreshes(emulator)} refresh; slowest "
        f"{max(latencies) * 1000:.0f} ms vs {max(baseline) * 1000:.0f} ms without expiry"
    )


async def test_a_slow_token_endpoint_still_gives_exactly_one_refresh(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    proxies = await replicas(3)
    emulator.settings.token_endpoint_delay_s = 2.0
    emulator.state.expire_access_tokens()
    latencies, outcomes = await stampede(proxies, 300)
    assert [status for status, _, _ in outcomes] == [200] * 300
    assert all(expected == received for _, expected, received in outcomes)
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    assert max(latencies) >= 2.0  # they really waited for the one slow refresh
    print(f"\nslow token endpoint (2 s): slowest request {max(latencies) * 1000:.0f} ms")


async def test_a_lock_shorter_than_the_refresh_is_kept_alive_and_one_refresh_happens(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore, connected: StoredPair
) -> None:
    proxies = await replicas(3, tokens={"lock_ttl_s": 0.3})
    emulator.settings.token_endpoint_delay_s = 1.5
    emulator.state.expire_access_tokens()
    _, outcomes = await stampede(proxies, 90)
    assert [status for status, _, _ in outcomes] == [200] * 90
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    stored = await store.load()
    assert stored is not None
    assert stored.version == connected.version + 1


async def test_a_fenced_write_never_replaces_a_newer_pair(
    store: RedisTokenStore, emulator: Emulator, connected: StoredPair
) -> None:
    from proxy.tokens import StaleWrite

    newer = NewTokens.from_token_response(emulator.state.issue_pair())
    await store.save(newer, expected_version=connected.version, obtained_by="replica-b")
    late = NewTokens.from_token_response(emulator.state.issue_pair())
    with pytest.raises(StaleWrite):
        await store.save(late, expected_version=connected.version, obtained_by="replica-a")
    stored = await store.load()
    assert stored is not None
    assert stored.access_token == newer.access_token


# --- failures ----------------------------------------------------------------------------------


async def test_a_token_endpoint_that_fails_briefly_is_retried_and_the_request_succeeds(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.fail_token_endpoint(times=2, status=500)
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/test/echo")).status == 200
    assert refreshes(emulator) == 3


async def test_a_failing_token_endpoint_gives_503_and_keeps_the_stored_pair(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.fail_token_endpoint(times=1000, status=500)
    emulator.state.expire_access_tokens()
    response = await proxy.get("/test/echo")
    assert response.status == 503
    assert response.headers["X-Proxy-Error"] == "refresh_failed"
    assert (await response.json())["error"] == "refresh_failed"
    stored = await store.load()
    assert stored is not None
    assert (stored.version, stored.refresh_token) == (connected.version, connected.refresh_token)
    assert refreshes(emulator) == 3  # the configured attempts, then it gave up


async def test_after_the_token_endpoint_recovers_requests_succeed_again(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.fail_token_endpoint(times=1000, status=503)
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/test/echo")).status == 503
    # Within the cool-down the token endpoint is left alone.
    assert (await proxy.get("/test/echo")).status == 503
    assert refreshes(emulator) == 3
    emulator.state.fail_token_endpoint(times=0)
    await asyncio.sleep(FAST_FAILURES["failed_refresh_cooldown_s"])
    assert (await proxy.get("/test/echo")).status == 200
    assert emulator.state.token_errors["invalid_grant"] == 0


async def test_a_revoked_refresh_token_gives_503_and_the_token_endpoint_is_left_alone(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    proxies = await replicas(3)
    emulator.state.revoke_refresh_tokens()
    emulator.state.expire_access_tokens()
    statuses: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        responses = await asyncio.gather(*(p.get("/public/v1/documents") for p in proxies * 5))
        statuses += [r.status for r in responses]
        body = await responses[0].json()
        assert body["error"] == "authorization_required"
        assert body["authorize_url"] == "/_proxy/oauth/authorize"
        assert responses[0].headers["X-Proxy-Error"] == "authorization_required"
        await asyncio.sleep(0.05)
    assert set(statuses) == {503}
    assert len(statuses) > 100
    assert refreshes(emulator) == 1


async def test_a_new_pair_stored_after_authorization_was_lost_is_used_at_once(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1, redis={"token_cache_s": 0})
    emulator.state.revoke_refresh_tokens()
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/test/echo")).status == 503
    lost = await store.load()
    assert lost is not None
    assert not lost.usable
    fresh = NewTokens.from_token_response(emulator.state.issue_pair())
    await store.save(fresh, expected_version=None, obtained_by="operator")
    assert (await proxy.get("/test/echo")).status == 200


async def test_ready_is_503_once_authorization_is_lost(
    replicas: Replicas, emulator: Emulator, connected: StoredPair
) -> None:
    (proxy,) = await replicas(1)
    emulator.state.revoke_refresh_tokens()
    emulator.state.expire_access_tokens()
    await proxy.get("/test/echo")
    response = await proxy.get("/_proxy/ready")
    assert response.status == 503
    assert (await response.json())["token"]["ok"] is False


# --- proactive refresh -------------------------------------------------------------------------


async def steady_traffic(proxy: Client, seconds: float) -> list[int]:
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.append((await proxy.get("/test/echo")).status)
        await asyncio.sleep(0.02)
    return statuses


async def test_a_short_lived_token_is_refreshed_ahead_of_expiry_so_no_request_sees_a_401(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore
) -> None:
    # Here a new pair leaves the previous access token valid until it expires, so any 401
    # would mean the proxy let a token expire.
    emulator.settings.access_token_lifetime_s = 3
    emulator.settings.invalidate_old_access_tokens = False
    await store.save(
        NewTokens.from_token_response(emulator.state.issue_pair()),
        expected_version=0,
        obtained_by="test",
    )
    (proxy,) = await replicas(1)
    statuses = await steady_traffic(proxy, 10)
    assert set(statuses) == {200}
    assert refreshes(emulator) >= 3
    assert emulator.state.unauthorized_responses == 0


async def test_when_a_new_pair_revokes_the_old_token_in_flight_requests_replay_without_refresh(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore
) -> None:
    # A request sent with the old token can reach PandaDoc just after the proactive refresh
    # revoked it: it gets a 401, finds the newer pair in the store and replays with it. The
    # client never sees the 401 and no extra refresh happens.
    # 5 s tokens, refreshed about 2.5 s in: slack for a loaded machine, where a late proactive
    # refresh would let a token expire and a 401 trigger a refresh (not what this is about).
    emulator.settings.access_token_lifetime_s = 5
    await store.save(
        NewTokens.from_token_response(emulator.state.issue_pair()),
        expected_version=0,
        obtained_by="test",
    )
    (proxy,) = await replicas(1)
    statuses = await steady_traffic(proxy, 8)
    assert set(statuses) == {200}, statuses
    metrics = await (await proxy.get("/_proxy/metrics")).text()
    refresh_lines = [line for line in metrics.splitlines() if "refreshes_total{" in line]
    assert 'pandadoc_proxy_refreshes_total{outcome="ok",trigger="proactive"}' in metrics
    assert 'trigger="rejected"' not in metrics, refresh_lines
    stored = await store.load()
    assert stored is not None
    assert stored.version == 1 + refreshes(emulator)  # each refresh made exactly one new pair


async def test_the_token_is_refreshed_ahead_of_expiry_also_without_traffic(
    replicas: Replicas, emulator: Emulator, store: RedisTokenStore
) -> None:
    emulator.settings.access_token_lifetime_s = 1
    first = await store.save(
        NewTokens.from_token_response(emulator.state.issue_pair()),
        expected_version=0,
        obtained_by="test",
    )
    await replicas(2)

    async def refreshed_twice() -> bool:
        stored = await store.load()
        return stored is not None and stored.version >= first.version + 2

    await wait_until(refreshed_twice)
    assert emulator.state.token_errors["invalid_grant"] == 0
