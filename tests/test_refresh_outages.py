"""Nothing is lost when Redis or the token endpoint misbehaves in the middle of a refresh
(issue 18): a Redis that stops taking writes or freezes while PandaDoc answers, nonsensical
token lifetimes, a lock left behind by a dead process, a renewal slower than a client waits.

The replicas are ``serve`` processes, on uvloop as shipped; Redis is a private redis-server
that the tests pause (``CLIENT PAUSE ... WRITE``, what a failover does) or SIGSTOP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from conftest import Emulator, ProxyProcess, RedisServer, proxy_config, wait_until

from proxy.config import Config
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair
from proxy.tokens.lock import lock_token

Spawn = Callable[..., Awaitable[ProxyProcess]]

pytestmark = pytest.mark.slow


def refreshes(emulator: Emulator) -> int:
    return emulator.state.token_calls["refresh_token"]


@pytest.fixture
async def private_store(
    emulator: Emulator, private_redis: RedisServer, key_prefix: str
) -> AsyncIterator[RedisTokenStore]:
    token_store = RedisTokenStore.from_config(
        proxy_config(emulator.url, private_redis.url, key_prefix)
    )
    yield token_store
    await token_store.close()


async def connect(store: RedisTokenStore, emulator: Emulator) -> StoredPair:
    tokens = NewTokens.from_token_response(emulator.state.issue_pair())
    return await store.save(tokens, expected_version=0, obtained_by="test")


async def get(session: aiohttp.ClientSession, url: str) -> str:
    """GET /test/echo: "200", or the status and the proxy's error code."""
    async with session.get(f"{url}/test/echo") as response:
        await response.read()
        code = response.headers.get("X-Proxy-Error")
        return f"{response.status} {code}" if code else str(response.status)


async def serve(spawn: Spawn, config: Config) -> ProxyProcess:
    replica = await spawn(config)
    await replica.wait_for_log('"event":"notices_subscribed"')
    return replica


async def pause_writes(redis_url: str, seconds: float) -> None:
    """``CLIENT PAUSE ... WRITE``: what Redis's own FAILOVER, and managed Redis maintenance,
    do. Reads are still answered; every write waits until the pause ends."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")
    finally:
        await client.aclose()


# --- a new pair is never dropped -----------------------------------------------------------


async def test_a_redis_write_pause_during_a_refresh_loses_nothing(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
) -> None:
    # Issue 18, trial 1: the save timed out, the new pair was dropped, the store kept the
    # refresh token PandaDoc had just consumed, and a person had to connect again.
    connected = await connect(private_store, emulator)
    replica = await serve(spawn_proxy, proxy_config(emulator.url, private_redis.url, key_prefix))
    emulator.settings.token_endpoint_delay_s = 1.0  # PandaDoc answers during the pause.
    emulator.state.expire_access_tokens()
    answers = []
    async with aiohttp.ClientSession() as session:
        refreshing = asyncio.create_task(get(session, replica.url))
        await wait_until(lambda: refreshes(emulator) == 1)  # PandaDoc has the refresh token.
        paused = time.monotonic()
        await pause_writes(private_redis.url, 6)
        answers.append(await refreshing)
        while time.monotonic() - paused < 4:
            answers.append(await get(session, replica.url))
        during = await private_store.load()  # Reads are answered during the pause.
        await asyncio.sleep(max(0.0, 6.5 - (time.monotonic() - paused)))  # The pause ends.
        await wait_until(lambda: _stored_version(private_store, connected.version + 1), within_s=10)
        answers.append(await get(session, replica.url))
        # The stored refresh token is the one PandaDoc issued last: the next refresh works.
        emulator.settings.token_endpoint_delay_s = 0
        emulator.state.expire_access_tokens()
        answers.append(await get(session, replica.url))
    assert set(answers) == {"200"}, answers
    assert during is not None
    assert during.version == connected.version  # Not written during the pause...
    stored = await private_store.load()
    assert stored is not None
    assert stored.usable
    assert stored.version == connected.version + 2  # ...then written, and refreshed again.
    assert refreshes(emulator) == 2  # One refresh token spent per refresh, none twice.
    assert emulator.state.token_errors["invalid_grant"] == 0
    log = replica.log_path.read_text()
    assert '"event":"pair_write_retry"' in log
    assert '"event":"pair_write_landed"' in log


async def test_a_frozen_redis_during_a_refresh_loses_nothing(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
) -> None:
    connected = await connect(private_store, emulator)
    replica = await serve(spawn_proxy, proxy_config(emulator.url, private_redis.url, key_prefix))
    emulator.settings.token_endpoint_delay_s = 1.0
    emulator.state.expire_access_tokens()
    assert private_redis.process is not None
    answers = []
    async with aiohttp.ClientSession() as session:
        refreshing = asyncio.create_task(get(session, replica.url))
        await wait_until(lambda: refreshes(emulator) == 1)
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            answers.append(await refreshing)
            while time.monotonic() - frozen < 5:
                answers.append(await get(session, replica.url))
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        await wait_until(lambda: _stored_version(private_store, connected.version + 1), within_s=15)
        emulator.settings.token_endpoint_delay_s = 0
        emulator.state.expire_access_tokens()
        answers.append(await get(session, replica.url))
    assert set(answers) == {"200"}, answers
    assert refreshes(emulator) == 2
    assert emulator.state.token_errors["invalid_grant"] == 0


async def _stored_version(store: RedisTokenStore, version: int) -> bool:
    try:
        pair = await store.load()
    except Exception:
        return False
    return pair is not None and pair.version >= version


# --- expiry values and the refresh ceiling -------------------------------------------------


@pytest.mark.parametrize("expires_in", [0, -1, float("nan")], ids=["zero", "negative", "NaN"])
async def test_a_nonsensical_lifetime_from_the_token_endpoint_never_makes_a_refresh_loop(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
    expires_in: float,
) -> None:
    # Issue 18, trial 2: with expires_in 0, -3600 or NaN the idle proxy renewed 75 times a
    # second. The first pair lives 2 s, so a proactive refresh comes at once; its answer
    # says nonsense, which must count as "unknown", not as "due again now".
    emulator.settings.access_token_lifetime_s = 2
    await connect(private_store, emulator)
    emulator.settings.expires_in_override = expires_in
    await serve(spawn_proxy, proxy_config(emulator.url, private_redis.url, key_prefix))
    await wait_until(lambda: refreshes(emulator) == 1)
    await asyncio.sleep(8)  # Idle: nothing but the proactive refresher runs.
    assert refreshes(emulator) == 1
    stored = await private_store.load()
    assert stored is not None
    assert stored.expires_at is None  # Unknown, not "now".


async def test_refreshes_beyond_the_ceiling_per_minute_are_refused_fleet_wide(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
) -> None:
    # Tokens that live one second would be renewed every half second, forever.
    emulator.settings.access_token_lifetime_s = 1
    await connect(private_store, emulator)
    config = proxy_config(
        emulator.url, private_redis.url, key_prefix, tokens={"max_refreshes_per_minute": 3}
    )
    replicas = [await serve(spawn_proxy, config) for _ in range(2)]
    await wait_until(lambda: refreshes(emulator) == 3)
    await asyncio.sleep(6)
    assert refreshes(emulator) == 3  # Across both replicas: the count lives with the pair.
    logs = "".join(replica.log_path.read_text() for replica in replicas)
    assert '"event":"refresh_ceiling"' in logs
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replicas[0].url}/_proxy/metrics") as response,
    ):
        metrics = await response.text()
    assert 'pandadoc_proxy_refreshes_total{outcome="ceiling"' in metrics


# --- locks and waits -----------------------------------------------------------------------


async def test_a_lock_left_by_a_process_that_died_is_taken_over_at_once(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
) -> None:
    # A holder killed mid-refresh leaves the lock for its TTL (60 s): the replicas would
    # wait that long. One in the same PID namespace can tell that its holder is gone.
    await connect(private_store, emulator)
    ghost = await asyncio.create_subprocess_exec("true")
    await ghost.wait()
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        await client.set(private_store.lock_key, lock_token("ghost", ghost.pid), px=60_000)
    finally:
        await client.aclose()
    replica = await serve(spawn_proxy, proxy_config(emulator.url, private_redis.url, key_prefix))
    emulator.state.expire_access_tokens()
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        assert await get(session, replica.url) == "200"
    assert time.monotonic() - started < 10  # Far sooner than the lock's 60 s.
    assert refreshes(emulator) == 1


async def test_a_client_waits_at_most_renewal_wait_s_while_the_renewal_goes_on(
    spawn_proxy: Spawn,
    emulator: Emulator,
    private_redis: RedisServer,
    private_store: RedisTokenStore,
    key_prefix: str,
) -> None:
    # Issue 18, trial 8: a token endpoint trickling its answer held a client 61 s.
    connected = await connect(private_store, emulator)
    config = proxy_config(emulator.url, private_redis.url, key_prefix, tokens={"renewal_wait_s": 1})
    replica = await serve(spawn_proxy, config)
    emulator.settings.token_endpoint_delay_s = 3
    emulator.state.expire_access_tokens()
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        first = await get(session, replica.url)
        waited = time.monotonic() - started
        await wait_until(lambda: _stored_version(private_store, connected.version + 1))
        second = await get(session, replica.url)
    assert first == "503 refresh_failed"
    assert waited < 2.5, waited
    assert second == "200"  # The renewal went on, and its pair serves the next request.
    assert refreshes(emulator) == 1
