"""Refresh across replicas that are separate processes: a stampede, a frozen lock holder, and a
large upload replayed after a 401."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from conftest import Emulator, ProxyProcess, proxy_config, wait_until

from proxy.config import Config
from proxy.tokens import RedisTokenStore, StoredPair

Spawn = Callable[..., Awaitable[ProxyProcess]]
MiB = 1024 * 1024

pytestmark = pytest.mark.slow


def refreshes(emulator: Emulator) -> int:
    return emulator.state.token_calls["refresh_token"]


async def request_once(
    session: aiohttp.ClientSession, base: str, index: int, rng: random.Random
) -> str:
    """One GET or POST-with-body: "ok" when it succeeded with the body intact, else what failed."""
    if index % 2:
        body = rng.randbytes(rng.randint(0, 100_000))
        async with session.post(f"{base}/test/upload", data=body) as response:
            if response.status != 200:
                return f"{response.status} {response.headers.get('X-Proxy-Error', '')}"
            intact = (await response.json())["sha256"] == hashlib.sha256(body).hexdigest()
            return "ok" if intact else "body changed"
    async with session.get(f"{base}/test/echo?i={index}") as response:
        await response.read()
        return (
            "ok"
            if response.status == 200
            else f"{response.status} {response.headers.get('X-Proxy-Error', '')}"
        )


async def test_300_concurrent_requests_on_3_replica_processes_share_one_refresh(
    spawn_proxy: Spawn, config: Config, emulator: Emulator, connected: StoredPair
) -> None:
    replicas = [await spawn_proxy(config) for _ in range(3)]
    rng = random.Random(3)

    async def timed(session: aiohttp.ClientSession, index: int) -> tuple[float, str]:
        started = time.perf_counter()
        outcome = await request_once(session, replicas[index % 3].url, index, rng)
        return time.perf_counter() - started, outcome

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for _ in range(2):  # the first round warms up; the second is the baseline
            baseline = await asyncio.gather(*(timed(session, i) for i in range(300)))
        emulator.state.expire_access_tokens()
        results = await asyncio.gather(*(timed(session, i) for i in range(300)))
    assert {outcome for _, outcome in results} == {"ok"}
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    slowest, slowest_before = max(t for t, _ in results), max(t for t, _ in baseline)
    print(
        f"\nstampede (processes): 300 requests on 3 replicas, {refreshes(emulator)} refresh; "
        f"slowest {slowest * 1000:.0f} ms vs {slowest_before * 1000:.0f} ms without expiry"
    )


async def test_a_lock_holder_frozen_mid_refresh_does_not_cause_a_second_refresh(
    spawn_proxy: Spawn,
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
    store: RedisTokenStore,
    connected: StoredPair,
) -> None:
    # The holder is frozen right after PandaDoc received its refresh, for longer than the token
    # endpoint's timeout, while the other replicas keep receiving traffic.
    config = proxy_config(emulator.url, redis_url, key_prefix, oauth={"token_timeout_s": 1.5})
    replicas = [await spawn_proxy(config) for _ in range(3)]
    emulator.settings.token_endpoint_delay_s = 0.5
    emulator.state.expire_access_tokens()

    outcomes: list[str] = []
    stop = asyncio.Event()

    async def traffic(replica: ProxyProcess, seed: int) -> None:
        rng = random.Random(seed)
        index = seed
        while not stop.is_set():
            outcomes.append(await request_once(session, replica.url, index, rng))
            index += 1

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [asyncio.create_task(traffic(replicas[i % 3], i)) for i in range(12)]
        await wait_until(lambda: refreshes(emulator) > 0)
        holder_pid = await lock_holder_pid(redis_url, store.lock_key)
        os.kill(holder_pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(3.0)  # > token_timeout_s + the endpoint's delay
        finally:
            os.kill(holder_pid, signal.SIGCONT)
        await asyncio.sleep(1.0)  # traffic flows again on every replica
        stop.set()
        await asyncio.gather(*workers)

    assert outcomes
    assert set(outcomes) == {"ok"}, {o: outcomes.count(o) for o in set(outcomes)}
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    stored = await store.load()
    assert stored is not None
    assert stored.usable
    assert stored.version == connected.version + 1


async def lock_holder_pid(redis_url: str, lock_key: str) -> int:
    """The pid of the process holding the refresh lock (its token is
    ``OWNER|HOST|NAMESPACE|PID|NONCE``, see proxy/tokens/lock.py)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        token = await client.get(lock_key)
    finally:
        await client.aclose()
    assert token is not None, "nobody holds the refresh lock while a refresh is in flight"
    return int(token.split("|")[3])


async def test_a_100_mb_upload_that_meets_a_401_is_replayed_intact_with_bounded_memory(
    spawn_proxy: Spawn, emulator: Emulator, redis_url: str, key_prefix: str, connected: StoredPair
) -> None:
    config = proxy_config(emulator.url, redis_url, key_prefix, limits={"max_body_bytes": 128 * MiB})
    replica = await spawn_proxy(config)
    size = 100 * MiB
    chunk = os.urandom(MiB)
    expected = hashlib.sha256(chunk * 100).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            yield chunk

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{replica.url}/test/upload", data=b"warm-up") as response:
            assert response.status == 200
        baseline = replica.rss_peak_kib()
        emulator.state.expire_access_tokens()
        async with session.post(f"{replica.url}/test/upload", data=body()) as response:
            assert response.status == 200
            result = await response.json()
    growth_mib = (replica.rss_peak_kib() - baseline) / 1024
    assert result == {"sha256": expected, "length": size}
    assert refreshes(emulator) == 1
    assert emulator.state.unauthorized_responses == 1
    assert growth_mib < 32, f"peak RSS grew by {growth_mib:.1f} MiB"
    print(f"\n100 MB upload replayed after a 401: peak RSS grew by {growth_mib:.1f} MiB")
