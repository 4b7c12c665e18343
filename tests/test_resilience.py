"""Redis outages and encryption at rest: keep serving, lose no token, fail loudly on a wrong key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, RedisServer, proxy_config, wait_until
from cryptography.fernet import Fernet

from proxy import create_app
from proxy.config import ConfigError, parse_config
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair, TokenStoreError

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def connect(store: RedisTokenStore, emulator: Emulator) -> StoredPair:
    tokens = NewTokens.from_token_response(emulator.state.issue_pair())
    return await store.save(tokens, expected_version=0, obtained_by="test")


@pytest.fixture
def private_config(emulator: Emulator, private_redis: RedisServer, key_prefix: str) -> Any:
    def make(**sections: dict[str, Any]) -> Any:
        sections.setdefault("redis", {})
        sections["redis"].setdefault("token_cache_s", 0.1)
        return proxy_config(emulator.url, private_redis.url, key_prefix, **sections)

    return make


# --- Redis outages -----------------------------------------------------------------------------


async def test_with_redis_down_requests_keep_flowing_on_the_token_held_in_memory(
    aiohttp_client: MakeClient, emulator: Emulator, private_redis: RedisServer, private_config: Any
) -> None:
    config = private_config()
    store = RedisTokenStore.from_config(config)
    await connect(store, emulator)
    await store.close()
    proxy = await aiohttp_client(create_app(config))
    assert (await proxy.get("/public/v1/documents")).status == 200
    private_redis.stop()
    for _ in range(20):
        assert (await proxy.get("/public/v1/documents")).status == 200
    ready = await proxy.get("/_proxy/ready")
    assert ready.status == 503
    assert (await ready.json())["redis"]["ok"] is False


async def test_a_redis_that_comes_back_empty_gets_the_held_pair_written_back(
    aiohttp_client: MakeClient, emulator: Emulator, private_redis: RedisServer, private_config: Any
) -> None:
    config = private_config()
    store = RedisTokenStore.from_config(config)
    original = await connect(store, emulator)
    proxy = await aiohttp_client(create_app(config))
    assert (await proxy.get("/public/v1/documents")).status == 200
    private_redis.stop()
    private_redis.start()  # no persistence: empty
    assert (await proxy.get("/public/v1/documents")).status == 200

    async def written_back() -> bool:
        return await store.load() is not None

    await wait_until(written_back)
    restored = await store.load()
    await store.close()
    assert restored is not None
    assert (restored.access_token, restored.refresh_token) == (
        original.access_token,
        original.refresh_token,
    )
    assert restored.version == original.version
    # A replica started afterwards (nothing in memory) is served from the restored pair.
    fresh = await aiohttp_client(create_app(config))
    assert (await fresh.get("/public/v1/documents")).status == 200
    assert emulator.state.token_calls["authorization_code"] == 0


async def test_a_restore_never_overwrites_a_pair_stored_the_ordinary_way(
    emulator: Emulator, private_config: Any
) -> None:
    store = RedisTokenStore.from_config(private_config())
    held = await connect(store, emulator)
    await store.client.flushdb()
    operator = await store.save(
        NewTokens.from_token_response(emulator.state.issue_pair()),
        expected_version=None,
        obtained_by="operator",
    )
    assert not await store.restore(held)
    assert await store.load() == operator
    await store.close()


async def test_of_two_restores_the_newer_pair_wins(emulator: Emulator, private_config: Any) -> None:
    store = RedisTokenStore.from_config(private_config())
    old = await connect(store, emulator)
    newer = await store.save(
        NewTokens.from_token_response(emulator.state.issue_pair()),
        expected_version=old.version,
        obtained_by="test",
    )
    await store.client.flushdb()
    assert await store.restore(old)
    assert await store.restore(newer)
    assert not await store.restore(old)
    stored = await store.load()
    await store.close()
    assert stored is not None
    assert stored.access_token == newer.access_token


# --- encryption at rest ------------------------------------------------------------------------


async def test_with_encryption_keys_no_token_is_stored_in_clear(
    aiohttp_client: MakeClient, emulator: Emulator, private_redis: RedisServer, private_config: Any
) -> None:
    config = private_config(tokens={"encryption_keys": Fernet.generate_key().decode()})
    store = RedisTokenStore.from_config(config)
    pair = await connect(store, emulator)
    await store.close()
    raw = aioredis.Redis.from_url(private_redis.url)
    dump = b"".join(
        [
            key + b"".join(v for kv in (await raw.hgetall(key)).items() for v in kv)
            for key in await raw.keys("*")
        ]
    )
    await raw.aclose()
    assert pair.access_token.encode() not in dump
    assert pair.refresh_token.encode() not in dump
    proxy = await aiohttp_client(create_app(config))
    assert (await proxy.get("/public/v1/documents")).status == 200


async def test_keys_can_be_rotated_by_putting_the_new_key_first(
    emulator: Emulator, private_config: Any
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = RedisTokenStore.from_config(private_config(tokens={"encryption_keys": old_key}))
    pair = await connect(before, emulator)
    await before.close()
    after = RedisTokenStore.from_config(
        private_config(tokens={"encryption_keys": f"{new_key},{old_key}"})
    )
    loaded = await after.load()
    await after.close()
    assert loaded is not None
    assert loaded.access_token == pair.access_token


async def test_a_wrong_key_is_a_clear_error_not_a_silent_reauthorization(
    aiohttp_client: MakeClient, emulator: Emulator, private_config: Any
) -> None:
    writer = RedisTokenStore.from_config(
        private_config(tokens={"encryption_keys": Fernet.generate_key().decode()})
    )
    await connect(writer, emulator)
    await writer.close()
    wrong = private_config(tokens={"encryption_keys": Fernet.generate_key().decode()})
    reader = RedisTokenStore.from_config(wrong)
    with pytest.raises(TokenStoreError, match="encrypted with a key"):
        await reader.load()
    await reader.close()
    proxy = await aiohttp_client(create_app(wrong))
    response = await proxy.get("/public/v1/documents")
    assert response.status == 503
    assert response.headers["X-Proxy-Error"] == "token_store_unavailable"
    ready = await (await proxy.get("/_proxy/ready")).json()
    assert "encrypted with a key" in ready["redis"]["error"]
    assert emulator.state.api_requests == 0


async def test_an_encrypted_pair_without_keys_configured_is_a_clear_error(
    emulator: Emulator, private_config: Any
) -> None:
    writer = RedisTokenStore.from_config(
        private_config(tokens={"encryption_keys": Fernet.generate_key().decode()})
    )
    await connect(writer, emulator)
    await writer.close()
    reader = RedisTokenStore.from_config(private_config())
    with pytest.raises(TokenStoreError, match="encryption_keys is not set"):
        await reader.load()
    await reader.close()


def test_a_malformed_encryption_key_is_a_configuration_error_that_hides_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "oauth": {"client_id": "a", "client_secret": "b"},
                "tokens": {"encryption_keys": "not-a-fernet-key-but-secret"},
            }
        )
    assert caught.value.key == "tokens.encryption_keys"
    assert "not-a-fernet-key-but-secret" not in str(caught.value)


async def test_a_refresh_in_flight_when_redis_was_wiped_still_stores_its_pair(
    emulator: Emulator, private_config: Any
) -> None:
    # The refresher read version 1, Redis restarts empty, a replica writes back version 1:
    # the refresher's new pair (from version 1) is the newest there is, and must be kept.
    store = RedisTokenStore.from_config(private_config())
    read = await connect(store, emulator)
    await store.client.flushdb()
    assert await store.restore(read)
    refreshed = NewTokens.from_token_response(emulator.state.issue_pair())
    stored = await store.save(refreshed, expected_version=read.version, obtained_by="refresher")
    assert stored.version == read.version + 1
    await store.client.flushdb()
    again = NewTokens.from_token_response(emulator.state.issue_pair())
    stored = await store.save(again, expected_version=stored.version, obtained_by="refresher")
    loaded = await store.load()
    await store.close()
    assert loaded is not None
    assert loaded.access_token == again.access_token
    assert loaded.restored_at is None


async def test_a_write_back_holds_off_refreshes_for_the_lock_lifetime(
    aiohttp_client: MakeClient, emulator: Emulator, private_config: Any
) -> None:
    # After a wipe the lock is gone too: a refresh may be in flight at another replica. So a
    # refresh from a written-back pair waits as it would for that replica's lock.
    config = private_config(tokens={"lock_ttl_s": 1.0})
    store = RedisTokenStore.from_config(config)
    held = await connect(store, emulator)
    await store.client.flushdb()
    assert await store.restore(held)
    emulator.state.expire_access_tokens()
    proxy = await aiohttp_client(create_app(config))
    started = asyncio.get_running_loop().time()
    response = await proxy.get("/public/v1/documents")
    waited = asyncio.get_running_loop().time() - started
    await store.close()
    assert response.status == 200
    assert waited >= 0.9
    assert emulator.state.token_calls["refresh_token"] == 1


# --- a failover that loses the last write ------------------------------------------------------


async def roll_back(store: RedisTokenStore, snapshot: dict[str, str]) -> None:
    """Make Redis hold an older state, as a replica that missed the last write would after a
    Sentinel failover (replication is asynchronous)."""
    await store.client.delete(store.pair_key)
    await store.client.hset(store.pair_key, mapping=snapshot)


async def test_after_a_failover_loses_the_last_refresh_the_replicas_write_it_back(
    aiohttp_client: MakeClient, emulator: Emulator, private_config: Any
) -> None:
    config = private_config(redis={"token_cache_s": 0})
    store = RedisTokenStore.from_config(config)
    first = await connect(store, emulator)
    snapshot = await store.client.hgetall(store.pair_key)
    proxy = await aiohttp_client(create_app(config))
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/public/v1/documents")).status == 200  # refreshed: version 2
    await roll_back(store, snapshot)
    assert (await proxy.get("/public/v1/documents")).status == 200  # reads 1, writes 2 back
    stored = await store.load()
    await store.close()
    assert stored is not None
    assert stored.version == first.version + 1
    assert emulator.state.token_calls["refresh_token"] == 1
    assert emulator.state.token_errors["invalid_grant"] == 0


async def test_a_refresh_after_a_failover_rolled_the_pair_back_starts_from_the_newer_pair(
    aiohttp_client: MakeClient, emulator: Emulator, private_config: Any
) -> None:
    # The replica holds version 2; Redis says version 1, whose refresh token PandaDoc has
    # already rotated away. Refreshing from version 1 would lose the authorization.
    # After writing the pair back, a refresh waits out the lock's lifetime (the lock may have
    # been lost with the write): kept short here.
    config = private_config(redis={"token_cache_s": 60}, tokens={"lock_ttl_s": 0.5})
    store = RedisTokenStore.from_config(config)
    await connect(store, emulator)
    snapshot = await store.client.hgetall(store.pair_key)
    proxy = await aiohttp_client(create_app(config))
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/public/v1/documents")).status == 200  # refreshed: version 2
    await roll_back(store, snapshot)
    emulator.state.expire_access_tokens()
    assert (await proxy.get("/public/v1/documents")).status == 200  # refreshed from version 2
    stored = await store.load()
    await store.close()
    assert emulator.state.token_calls["refresh_token"] == 2
    assert emulator.state.token_errors["invalid_grant"] == 0
    assert stored is not None
    assert stored.usable
    assert stored.version == 3
