"""Redis deployments through redis-py's own support: TLS (``rediss://``), Sentinel (with a
failover under traffic) and Cluster (a refresh stampede over two replicas, the lock, the fence,
one slot per deployment). The configuration keys that choose them are checked first.

Every Redis here is a real ``redis-server`` process on a free loopback port, started and
removed by ``redis_topologies.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import Emulator, ProxyProcess, proxy_config, write_config
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis_topologies import (
    MASTER_NAME,
    ClusterDeployment,
    SentinelDeployment,
    cluster_deployment,
    sentinel_deployment,
    tls_server,
)

from proxy import create_app
from proxy.config import Config, ConfigError, parse_config, parse_sentinels
from proxy.tokens import NewTokens, RedisTokenStore, StaleWrite, StoredPair
from proxy.tokens.redis_client import create_redis_client

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Spawn = Callable[..., Awaitable[ProxyProcess]]

SECRET = "s3cr3t-Pa55"


def refreshes(emulator: Emulator) -> int:
    return emulator.state.token_calls["refresh_token"]


async def seed(config: Config, emulator: Emulator) -> StoredPair:
    """Store a pair minted by the emulator, through the store the proxy itself builds."""
    store = RedisTokenStore.from_config(config)
    try:
        tokens = NewTokens.from_token_response(emulator.state.issue_pair())
        return await store.save(tokens, expected_version=0, obtained_by="test")
    finally:
        await store.close()


async def poll(condition: Callable[[], bool], what: str, *, within_s: float) -> float:
    """Poll a blocking ``condition`` off the event loop (the proxy under test runs on it);
    returns when it first held (monotonic time)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if await asyncio.to_thread(condition):
                return time.monotonic()
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within_s} s")
        await asyncio.sleep(0.05)


# --- configuration --------------------------------------------------------------------------


def redis_section(**redis: Any) -> dict[str, Any]:
    return {"oauth": {"client_id": "id", "client_secret": "secret"}, "redis": redis}


SENTINELS = "10.0.0.1:26379, sentinel-2.example:26379,[::1]:26380"


@pytest.mark.parametrize(
    ("redis_keys", "key"),
    [
        pytest.param({"sentinels": SENTINELS}, "redis.sentinel_master", id="no-master-name"),
        pytest.param({"sentinel_master": "mymaster"}, "redis.sentinels", id="no-sentinels"),
        pytest.param(
            {"sentinels": "10.0.0.1", "sentinel_master": "m"}, "redis.sentinels", id="no-port"
        ),
        pytest.param(
            {"sentinels": "h:0", "sentinel_master": "m"}, "redis.sentinels", id="port-zero"
        ),
        pytest.param(
            {"sentinels": "h:26379,h:x", "sentinel_master": "m"}, "redis.sentinels", id="bad-port"
        ),
        pytest.param(
            {"sentinels": " , ", "sentinel_master": "m"}, "redis.sentinels", id="only-commas"
        ),
        pytest.param(
            {"sentinels": f"redis://:{SECRET}@h:26379", "sentinel_master": "m"},
            "redis.sentinels",
            id="sentinel-url",
        ),
        pytest.param({"sentinel_password": SECRET}, "redis.sentinel_password", id="password-alone"),
        pytest.param(
            {"cluster": True, "sentinels": SENTINELS, "sentinel_master": "m"},
            "redis.cluster",
            id="cluster-and-sentinel",
        ),
        pytest.param({"cluster": "maybe"}, "redis.cluster", id="cluster-not-a-boolean"),
        pytest.param(
            {"cluster": True, "url": f"redis://:{SECRET}@node-1:7000/2"},
            "redis.url",
            id="cluster-database-2",
        ),
        pytest.param(
            {"cluster": True, "url": f"redis://:{SECRET}@node-1:7000?db=1"},
            "redis.url",
            id="cluster-db-query",
        ),
        pytest.param(
            {"cluster": True, "url": "unix:///run/redis.sock"}, "redis.url", id="cluster-unix"
        ),
        pytest.param(
            {"sentinels": SENTINELS, "sentinel_master": "m", "url": "unix:///run/redis.sock"},
            "redis.url",
            id="sentinel-unix",
        ),
        pytest.param({"url": f"http://:{SECRET}@redis:6379/0"}, "redis.url", id="http-scheme"),
        pytest.param({"url": f"redis://:{SECRET}@redis:port/0"}, "redis.url", id="bad-port"),
    ],
)
def test_redis_deployment_errors_name_the_key_and_never_the_secret(
    redis_keys: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(redis_section(**redis_keys), source="proxy.yaml")
    assert caught.value.key == key
    assert str(caught.value).startswith(f"proxy.yaml: {key}: ")
    assert SECRET not in str(caught.value)


def test_the_sentinel_list_accepts_names_addresses_and_bracketed_ipv6() -> None:
    assert parse_sentinels(SENTINELS) == (
        ("10.0.0.1", 26379),
        ("sentinel-2.example", 26379),
        ("::1", 26380),
    )


def test_the_sentinel_list_is_parsed_once_into_addresses_also_from_a_yaml_list() -> None:
    as_text = parse_config(redis_section(sentinels=SENTINELS, sentinel_master="m")).redis
    as_list = parse_config(redis_section(sentinels=SENTINELS.split(","), sentinel_master="m")).redis
    assert as_text.sentinels == as_list.sentinels == parse_sentinels(SENTINELS)


def test_the_new_keys_default_to_one_plain_server_and_keep_secrets_out_of_reprs() -> None:
    config = parse_config(
        redis_section(
            url=f"rediss://:{SECRET}@redis.example:6380/0",
            sentinels=SENTINELS,
            sentinel_master="mymaster",
            sentinel_password=SECRET,
        )
    )
    assert SECRET not in repr(config)
    default = parse_config(redis_section()).redis
    assert (default.sentinels, default.sentinel_master, default.cluster) == ((), "", False)


async def test_a_rediss_url_gives_a_tls_client_with_the_query_options() -> None:
    config = parse_config(
        redis_section(url=f"rediss://:{SECRET}@redis.example:6380/3?ssl_ca_certs=/etc/ca.pem")
    ).redis
    client = create_redis_client(config)
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        kwargs = pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 3)
        assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
        assert kwargs["decode_responses"] is True
        assert kwargs["socket_timeout"] == config.socket_timeout_s
    finally:
        await client.aclose()


async def test_sentinel_settings_reach_the_master_pool_and_the_sentinels() -> None:
    config = parse_config(
        redis_section(
            url=f"rediss://app:{SECRET}@ignored:1/2?ssl_ca_certs=/etc/ca.pem",
            sentinels=SENTINELS,
            sentinel_master="mymaster",
            sentinel_password="sentinel-" + SECRET,
            socket_timeout_s=1.5,
        )
    ).redis
    client = create_redis_client(config)
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
        kwargs = pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", SECRET, 2)
        assert "host" not in kwargs  # the sentinels say where the master is
        assert kwargs["decode_responses"] is True
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 1.5
        sentinels = pool.sentinel_manager.sentinels
        assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [
            26379,
            26379,
            26380,
        ]
        for sentinel in sentinels:
            sentinel_kwargs = sentinel.connection_pool.connection_kwargs
            assert sentinel_kwargs["password"] == "sentinel-" + SECRET
            assert sentinel.connection_pool.connection_class is SSLConnection
            assert sentinel_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    finally:
        await client.aclose()


async def test_cluster_mode_gives_a_cluster_client() -> None:
    config = parse_config(redis_section(url=f"redis://:{SECRET}@node-1:7000/0", cluster=True)).redis
    client = create_redis_client(config)
    try:
        assert isinstance(client, RedisCluster)
        startup = client.nodes_manager.startup_nodes.values()
        assert [(n.host, n.port) for n in startup] == [("node-1", 7000)]
        assert client.connection_kwargs["decode_responses"] is True
        assert client.connection_kwargs["password"] == SECRET
    finally:
        await client.aclose()


def test_check_config_accepts_sentinel_and_cluster_files(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    for name, redis_keys in {
        "sentinel": {"sentinels": SENTINELS, "sentinel_master": "mymaster"},
        "cluster": {"cluster": True, "url": "redis://node-1:7000"},
    }.items():
        path = write_config(tmp_path / f"{name}.yaml", parse_config(redis_section(**redis_keys)))
        result = run_cli("check-config", "--config", str(path))
        assert result.returncode == 0, result.stderr


# --- TLS ------------------------------------------------------------------------------------


async def test_the_proxy_works_against_a_tls_only_redis_through_a_rediss_url(
    aiohttp_client: MakeClient, emulator: Emulator, key_prefix: str
) -> None:
    with tls_server() as server:
        config = proxy_config(emulator.url, server.url, key_prefix)
        await seed(config, emulator)
        proxy = await aiohttp_client(create_app(config))
        response = await proxy.get("/_proxy/ready")
        assert response.status == 200, await response.text()
        emulator.state.expire_access_tokens()
        response = await proxy.get("/public/v1/documents")
        assert response.status == 200
        assert refreshes(emulator) == 1  # the lock and the fenced write went over TLS too
        await proxy.close()


# --- Sentinel -------------------------------------------------------------------------------


@pytest.fixture
def sentinel() -> Iterator[SentinelDeployment]:
    with sentinel_deployment() as deployment:
        yield deployment


@pytest.mark.slow
async def test_a_sentinel_failover_under_traffic_keeps_requests_flowing_and_refreshes_once(
    sentinel: SentinelDeployment,
    aiohttp_client: MakeClient,
    emulator: Emulator,
    key_prefix: str,
    run_cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # The URL's host is not used with sentinels: the master's name there is only a reminder.
    config = proxy_config(
        emulator.url,
        f"redis://{MASTER_NAME}/0",
        key_prefix,
        # A short cache, so the store is read (and fails) all through the failover.
        redis={
            "sentinels": sentinel.sentinels_setting,
            "sentinel_master": MASTER_NAME,
            "token_cache_s": 0.1,
            "socket_timeout_s": 0.5,
        },
    )
    seeded = await seed(config, emulator)
    # The pair has reached the replica before the master dies: this test is about the proxy,
    # not about the asynchronous replication of Redis.
    with sentinel.master.client() as master:
        assert master.wait(1, 5000) == 1
    proxy = await aiohttp_client(create_app(config))
    assert (await proxy.get("/public/v1/documents")).status == 200

    # (sent at, status, X-Proxy-Error, seconds taken) per request, per replica.
    outcomes: dict[str, list[tuple[float, int, str, float]]] = {"warm": [], "cold": []}
    readiness: list[tuple[float, int, str]] = []
    stop = asyncio.Event()

    async def traffic(replica: Client, log: list[tuple[float, int, str, float]]) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            async with replica.get("/public/v1/documents") as response:
                await response.read()
                error = response.headers.get("X-Proxy-Error", "")
                log.append((sent, response.status, error, time.monotonic() - sent))
            await asyncio.sleep(0.005)

    async def ready_probe() -> None:
        while not stop.is_set():
            async with proxy.get("/_proxy/ready") as response:
                body = await response.json()
                readiness.append((time.monotonic(), response.status, body["redis"].get("error")))
            await asyncio.sleep(0.05)

    workers = [asyncio.create_task(traffic(proxy, outcomes["warm"])) for _ in range(4)]
    workers.append(asyncio.create_task(ready_probe()))
    try:
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        await asyncio.to_thread(sentinel.master.kill)  # SIGKILL, mid-traffic
        # A replica that starts now holds no token: it has only the store to ask.
        cold = await aiohttp_client(create_app(config))
        workers.append(asyncio.create_task(traffic(cold, outcomes["cold"])))
        promoted_at = await poll(
            lambda: sentinel.master_port() == sentinel.replica.port,
            "the sentinels promote the replica",
            within_s=20,
        )
        # The proxy reaches the new master (its ready check pings it and reads the pair).
        recovered_at = await poll(
            lambda: any(t > promoted_at and status == 200 for t, status, _ in readiness),
            "the proxy is ready again",
            within_s=15,
        )
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*workers)

    def summary(log: list[tuple[float, int, str, float]]) -> str:
        window = [o for o in log if killed_at <= o[0] <= recovered_at]
        failed = [o for o in log if o[1] != 200]
        answers = {
            f"{s} {e}".strip(): sum(1 for o in log if (o[1], o[2]) == (s, e))
            for s, e in {(o[1], o[2]) for o in log}
        }
        text = (
            f"{len(log)} requests ({len(window)} between kill and recovery), {answers}, "
            f"slowest {max(o[3] for o in log) * 1000:.0f} ms"
        )
        if failed:
            text += (
                f"; failures from +{failed[0][0] - killed_at:.2f} s to "
                f"+{failed[-1][0] - killed_at:.2f} s after the kill"
            )
        return text

    not_ready = [(t, error) for t, status, error in readiness if status != 200 and t >= killed_at]
    print(
        f"\nsentinel failover: replica promoted {promoted_at - killed_at:.2f} s after SIGKILL; "
        f"proxy ready again {recovered_at - killed_at:.2f} s after it"
        f"\n  replica holding the token: {summary(outcomes['warm'])}"
        f"\n  replica started after the kill: {summary(outcomes['cold'])}"
        f"\n  /_proxy/ready: 503 x{len(not_ready)}"
        + (f" over {not_ready[-1][0] - not_ready[0][0]:.2f} s" if not_ready else "")
        + f", redis errors {sorted({str(e) for _, e in not_ready})}"
    )
    # The held token carries every request through the failover: none failed.
    assert [o for o in outcomes["warm"] if killed_at <= o[0] <= recovered_at]
    assert {(o[1], o[2]) for o in outcomes["warm"]} == {(200, "")}
    # Without a token in memory, a request during the failover gets 503
    # token_store_unavailable, and nothing else; once the new master answers, 200 again.
    assert {(o[1], o[2]) for o in outcomes["cold"]} <= {(200, ""), (503, "token_store_unavailable")}
    assert outcomes["cold"][-1][1] == 200
    assert recovered_at - killed_at < 15

    # Store writes go to the new master: one refresh for a burst of rejected requests.
    emulator.state.expire_access_tokens()
    responses = await asyncio.gather(*(proxy.get("/public/v1/documents") for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    with sentinel.replica.client() as new_master:
        assert new_master.info("replication")["role"] == "master"
        stored = new_master.hgetall(f"{{{key_prefix}}}:token")
    assert int(stored["version"]) == seeded.version + 1
    assert stored["obtained_by"] not in ("", "test")

    # The command line finds the new master through the sentinels too.
    path = write_config(tmp_path / "sentinel.yaml", config)
    result = run_cli("token", "status", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"version: {seeded.version + 1}" in result.stdout


# --- Cluster --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterDeployment]:
    with cluster_deployment() as deployment:
        yield deployment


def cluster_config(cluster: ClusterDeployment, emulator_url: str, key_prefix: str) -> Config:
    return proxy_config(emulator_url, cluster.url, key_prefix, redis={"cluster": True})


@pytest.mark.slow
async def test_a_stampede_over_two_replicas_on_a_cluster_refreshes_exactly_once(
    cluster: ClusterDeployment,
    aiohttp_client: MakeClient,
    spawn_proxy: Spawn,
    emulator: Emulator,
    key_prefix: str,
) -> None:
    config = cluster_config(cluster, emulator.url, key_prefix)
    seeded = await seed(config, emulator)
    local = await aiohttp_client(create_app(config))  # a replica in this process
    remote = await spawn_proxy(config)  # and one started from the YAML file, as in production

    async with aiohttp.ClientSession() as session:

        async def one(index: int) -> int:
            if index % 2:
                async with session.get(f"{remote.url}/public/v1/documents") as response:
                    await response.read()
                    return response.status
            async with local.get("/public/v1/documents") as response:
                await response.read()
                return response.status

        assert await asyncio.gather(*(one(i) for i in range(4))) == [200] * 4
        async with session.get(f"{remote.url}/_proxy/ready") as response:
            assert response.status == 200, await response.text()
        emulator.state.expire_access_tokens()
        statuses = await asyncio.gather(*(one(i) for i in range(60)))

    assert statuses == [200] * 60
    assert refreshes(emulator) == 1
    assert emulator.state.token_errors["invalid_grant"] == 0
    store = RedisTokenStore.from_config(config)
    try:
        pair = await store.load()
        assert pair is not None
        assert pair.version == seeded.version + 1
    finally:
        await store.close()


async def test_every_key_of_a_deployment_lives_in_one_slot_of_the_cluster(
    cluster: ClusterDeployment, key_prefix: str, emulator: Emulator
) -> None:
    config = cluster_config(cluster, emulator.url, key_prefix)
    await seed(config, emulator)
    store = RedisTokenStore.from_config(config)
    lock = store.refresh_lock("test", ttl_s=30)
    try:
        await store.put_oauth_state("state-1", "browser-1", 60)
        assert await lock.try_acquire()
        found: dict[int, list[str]] = {}
        for node in cluster.nodes:
            with node.client() as client:
                keys = [str(k) for k in client.keys(f"*{{{key_prefix}}}*")]
                if keys:
                    found[node.port] = keys
                    slots = {client.execute_command("CLUSTER", "KEYSLOT", k) for k in keys}
        assert len(found) == 1, found  # one node holds them all ...
        (keys,) = found.values()
        assert set(keys) == {
            store.pair_key,
            store.lock_key,
            f"{{{key_prefix}}}:oauth-state:state-1",
        }
        assert len(slots) == 1  # ... in one slot
    finally:
        await lock.release()
        await store.close()


async def test_the_refresh_lock_and_the_fenced_writes_work_on_a_cluster(
    cluster: ClusterDeployment, key_prefix: str
) -> None:
    config = cluster_config(cluster, "http://unused", key_prefix)
    # No script cached anywhere: the first EVALSHA of each script meets NOSCRIPT and loads it.
    for node in cluster.nodes:
        with node.client() as client:
            client.script_flush()
    a, b = RedisTokenStore.from_config(config), RedisTokenStore.from_config(config)
    try:
        first = await a.save(NewTokens("A1", "R1", 3600), expected_version=0, obtained_by="a")
        with pytest.raises(StaleWrite):
            await b.save(NewTokens("B1", "RB", 3600), expected_version=0, obtained_by="b")
        assert not await b.mark_authorization_lost(first.version + 1, "not this version")
        loaded = await b.load()
        assert loaded is not None
        assert (loaded.access_token, loaded.version, loaded.usable) == ("A1", 1, True)

        lock_a, lock_b = a.refresh_lock("a", ttl_s=0.4), b.refresh_lock("b", ttl_s=0.4)
        assert await lock_a.try_acquire()
        assert not await lock_b.try_acquire()
        assert await lock_a.extend()
        await asyncio.sleep(0.6)  # a's lease runs out: b may take the lock
        assert await lock_b.try_acquire()
        assert not await lock_a.extend()  # not a's any more ...
        await lock_a.release()  # ... so a cannot release b's lock either
        assert not await a.refresh_lock("c", ttl_s=5).try_acquire()
        await lock_b.release()
        assert await lock_a.try_acquire()
        await lock_a.release()

        second = await b.save(NewTokens("B2", "RB2", 3600), expected_version=1, obtained_by="b")
        assert second.version == 2
        await b.ping()
    finally:
        await a.close()
        await b.close()
