"""Metrics of a replica, not of a worker (proxy/metrics_merge.py).

First the merge itself, on snapshots of real registries; then ``serve --workers 2`` as real
processes: requests spread over both workers, and scrapes that land on either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Emulator, ProxyProcess, proxy_config, raw_exchange, wait_until, write_config
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from proxy.config import Config
from proxy.metrics import ProxyMetrics
from proxy.metrics_merge import (
    GAUGE_MERGE,
    SNAPSHOT_INTERVAL_S,
    Snapshot,
    merge,
    pair_freshness,
)
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair
from proxy.tokens.model import authorization_state

# --- the merge -----------------------------------------------------------------------------------


def a_pair(*, obtained_at: float, expires_in: float, version: int = 1) -> StoredPair:
    return StoredPair(
        "access",
        "refresh",
        expires_at=time.time() + expires_in,
        version=version,
        obtained_at=obtained_at,
        obtained_by="test",
    )


def worker(
    pid: int, *, requests: int = 0, in_flight: int = 0, pair: StoredPair | None = None
) -> tuple[ProxyMetrics, Snapshot]:
    """A worker's metrics after ``requests`` GETs, and its snapshot (through JSON, as on disk)."""
    metrics = ProxyMetrics.create()
    metrics.watch_credentials(lambda: authorization_state(pair), lambda: pair)
    for i in range(requests):
        metrics.requests.count_request("GET", 200)
        metrics.requests.upstream_seconds.observe(0.001 * (i + 1))
    metrics.requests.in_flight = in_flight
    metrics.proxy_errors.labels("bad_request").inc(requests)
    snapshot = Snapshot(pid, time.time(), pair_freshness(pair), list(metrics.registry.collect()))
    return metrics, Snapshot.from_json(snapshot.to_json())


class Families(Collector):
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def exposition(families: list[Any]) -> str:
    return generate_latest(Families(families)).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_one_workers_snapshot_merges_into_exactly_its_own_exposition() -> None:
    metrics, snapshot = worker(1, requests=7, in_flight=2, pair=None)
    own = generate_latest(metrics.registry).decode()
    assert exposition(merge([snapshot], own_pid=1)) == own


def test_counters_and_histograms_of_every_worker_are_summed() -> None:
    _, a = worker(1, requests=19)
    _, b = worker(2, requests=21)
    text = exposition(merge([a, b], own_pid=1))
    assert value(text, "pandadoc_proxy_requests_total", method="GET", status_class="2xx") == 40
    assert value(text, "pandadoc_proxy_errors_total", code="bad_request") == 40
    assert value(text, "pandadoc_proxy_upstream_seconds_count") == 40
    expected_sum = sum(0.001 * (i + 1) for i in range(19)) + sum(0.001 * (i + 1) for i in range(21))
    assert value(text, "pandadoc_proxy_upstream_seconds_sum") == pytest.approx(expected_sum)
    # Buckets stay cumulative: the sum of cumulative counts is the cumulative count of sums.
    assert value(text, "pandadoc_proxy_upstream_seconds_bucket", le="0.01") == 20
    assert value(text, "pandadoc_proxy_upstream_seconds_bucket", le="+Inf") == 40


def test_requests_in_flight_are_summed() -> None:
    _, a = worker(1, in_flight=3)
    _, b = worker(2, in_flight=4)
    text = exposition(merge([a, b], own_pid=2))
    assert value(text, "pandadoc_proxy_in_flight_requests") == 7


@pytest.mark.parametrize(("mode", "expected"), [("max", 4), ("min", 3), ("sum", 7)])
def test_a_gauge_can_be_merged_by_its_largest_or_smallest_value(mode: str, expected: int) -> None:
    _, a = worker(1, in_flight=3)
    _, b = worker(2, in_flight=4)
    modes: Any = {**GAUGE_MERGE, "pandadoc_proxy_in_flight_requests": mode}
    text = exposition(merge([a, b], own_pid=1, gauge_modes=modes))
    assert value(text, "pandadoc_proxy_in_flight_requests") == expected


def test_the_token_gauges_come_from_the_worker_holding_the_newest_pair() -> None:
    old = a_pair(obtained_at=1_000, expires_in=1_000)
    new = a_pair(obtained_at=2_000, expires_in=5_000)
    _, stale = worker(1, pair=old)
    _, fresh = worker(2, pair=new)
    _, empty = worker(3, pair=None)
    for own in (1, 2, 3):  # Whichever worker the scrape lands on.
        text = exposition(merge([stale, fresh, empty], own_pid=own))
        assert value(text, "pandadoc_proxy_token_expires_in_seconds") > 4_000
        assert value(text, "pandadoc_proxy_authorization_state", state="connected") == 1


def test_a_pair_written_again_counts_as_newer_than_its_earlier_version() -> None:
    held = a_pair(obtained_at=1_000, expires_in=1_000)
    failing = dataclasses.replace(held, version=2, refresh_error="token endpoint down")
    _, before = worker(1, pair=held)
    _, after = worker(2, pair=failing)
    text = exposition(merge([before, after], own_pid=1))
    assert value(text, "pandadoc_proxy_authorization_state", state="refresh_failing") == 1
    assert value(text, "pandadoc_proxy_authorization_state", state="connected") == 0


def test_workers_holding_the_same_pair_show_the_scraped_workers_own_figure() -> None:
    pair = a_pair(obtained_at=1_000, expires_in=1_000)
    _, earlier = worker(1, pair=pair)
    time.sleep(0.05)
    _, scraped = worker(2, pair=pair)
    # The scraped worker's snapshot is the one just written: its countdown is the exact one.
    text = exposition(merge([earlier, scraped], own_pid=2))
    own = samples(exposition(scraped.families))
    assert (
        value(text, "pandadoc_proxy_token_expires_in_seconds")
        == own[("pandadoc_proxy_token_expires_in_seconds", ())]
    )


def test_without_any_pair_the_expiry_is_nan_and_the_state_not_connected() -> None:
    _, a = worker(1)
    _, b = worker(2)
    text = exposition(merge([a, b], own_pid=1))
    assert math.isnan(value(text, "pandadoc_proxy_token_expires_in_seconds"))
    assert value(text, "pandadoc_proxy_authorization_state", state="not_connected") == 1


def test_every_gauge_of_the_registry_names_how_workers_are_merged() -> None:
    gauges = {
        family.name for family in ProxyMetrics.create().registry.collect() if family.type == "gauge"
    }
    missing = gauges - set(GAUGE_MERGE)
    assert not missing, f"add these to metrics_merge.GAUGE_MERGE: {sorted(missing)}"


# --- serve --workers 2 ---------------------------------------------------------------------------


@pytest.fixture
async def two_workers(
    tmp_path: Path, config: Config, connected: StoredPair
) -> AsyncIterator[ProxyProcess]:
    replica = await ProxyProcess.start(write_config(tmp_path / "proxy.yaml", config), workers=2)
    try:
        await wait_until_both_workers_listen(replica)
        yield replica
    finally:
        assert await replica.stop() == 0


def access_lines(replica: ProxyProcess) -> list[dict[str, Any]]:
    lines = []
    for line in replica.log_path.read_text().splitlines():
        if line.startswith("{") and '"event":"access"' in line:
            lines.append(json.loads(line))
    return lines


def replicas_of(replica: ProxyProcess, request_ids: set[str]) -> set[str]:
    return {line["replica"] for line in access_lines(replica) if line["request_id"] in request_ids}


async def fresh_get(url: str) -> tuple[int, str, str]:
    """A GET on a connection of its own (the kernel spreads new connections over workers)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Connection": "close"}) as response,
    ):
        return response.status, response.headers["X-Request-Id"], await response.text()


async def wait_until_both_workers_listen(replica: ProxyProcess) -> None:
    ids: set[str] = set()

    async def two_answered() -> bool:
        _, request_id, _ = await fresh_get(f"{replica.url}/_proxy/health")
        ids.add(request_id)
        return len(replicas_of(replica, ids)) == 2

    await wait_until(two_answered, within_s=30)


async def scrape(replica: ProxyProcess) -> tuple[str, str]:
    """One scrape: the exposition, and the id of the worker that answered it."""
    status, request_id, text = await fresh_get(f"{replica.url}/_proxy/metrics")
    assert status == 200
    return text, request_id


async def requests_of_method(replica: ProxyProcess, method: str, count: int) -> set[str]:
    ids = set()
    for _ in range(count):
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{replica.url}/test/echo", headers={"Connection": "close"}
            ) as response,
        ):
            assert response.status == 200
            ids.add(response.headers["X-Request-Id"])
    return ids


def put_requests(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pandadoc_proxy_requests_total" and sample.labels["method"] == "PUT"
    )


@pytest.mark.slow
async def test_every_scrape_shows_the_requests_errors_and_latencies_of_both_workers(
    two_workers: ProxyProcess,
) -> None:
    """The issue's trial: N requests, then several scrapes that each show N (not 19, 21)."""
    replica = two_workers
    sent = await requests_of_method(replica, "PUT", 40)
    assert len(replicas_of(replica, sent)) == 2, "the requests did not reach both workers"
    for _ in range(6):  # The proxy's own 400s, on either worker.
        answer = await raw_exchange(replica.port, b"GET /x/%2e%2e/y HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")

    # Another worker's figures reach a scrape with its next snapshot: wait that long once.
    await asyncio.sleep(SNAPSHOT_INTERVAL_S * 2)
    scrape_ids = set()
    for _ in range(12):
        text, request_id = await scrape(replica)
        scrape_ids.add(request_id)
        assert put_requests(text) == 40
        assert value(text, "pandadoc_proxy_upstream_seconds_count") == 40
        assert value(text, "pandadoc_proxy_errors_total", code="bad_request") == 6
    assert len(replicas_of(replica, scrape_ids)) == 2, "the scrapes did not reach both workers"


@pytest.mark.slow
async def test_no_counter_goes_backwards_between_scrapes_under_load(
    two_workers: ProxyProcess,
) -> None:
    replica = two_workers
    stop = asyncio.Event()

    async def load() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                headers = {"Connection": "close"}
                async with session.get(f"{replica.url}/test/echo", headers=headers) as response:
                    assert response.status == 200

    loaders = [asyncio.create_task(load()) for _ in range(4)]
    try:
        previous: dict[Any, float] = {}
        scrape_ids = set()
        for _ in range(20):
            text, request_id = await scrape(replica)
            scrape_ids.add(request_id)
            now = {
                key: figure
                for family in text_string_to_metric_families(text)
                if family.type in ("counter", "histogram")
                for key, figure in samples_of(family)
            }
            for key, figure in previous.items():
                assert now.get(key, 0) >= figure, f"{key} went from {figure} to {now.get(key)}"
            previous = now
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*loaders)
    assert len(replicas_of(replica, scrape_ids)) == 2, "the scrapes did not reach both workers"
    assert previous[("pandadoc_proxy_requests_total", (("method", "GET"), ("status_class", "2xx")))]


def samples_of(family: Any) -> Iterator[tuple[Any, float]]:
    for sample in family.samples:
        yield (sample.name, tuple(sorted(sample.labels.items()))), sample.value


@pytest.mark.slow
async def test_the_token_gauges_do_not_flap_between_workers_holding_different_pairs(
    tmp_path: Path, emulator: Emulator, redis_url: str, key_prefix: str, store: RedisTokenStore
) -> None:
    """One worker renews the pair; the other keeps the old one in its cache for a minute. Every
    scrape, on either worker, reports the newer pair's expiry."""
    old = NewTokens.from_token_response(emulator.state.issue_pair())
    await store.save(
        dataclasses.replace(old, expires_in=1_000), expected_version=0, obtained_by="t"
    )
    config = proxy_config(emulator.url, redis_url, key_prefix, redis={"token_cache_s": 60})
    replica = await ProxyProcess.start(write_config(tmp_path / "proxy.yaml", config), workers=2)
    try:
        await wait_until_both_workers_listen(replica)
        # Each worker takes the old pair into its cache.
        for _ in range(6):
            assert (await fresh_get(f"{replica.url}/test/echo"))[0] == 200
        emulator.state.expire_access_tokens()
        status, _, _ = await fresh_get(f"{replica.url}/test/echo")
        assert status == 200
        renewed = await store.load()
        assert renewed is not None
        assert renewed.version == 2
        assert (renewed.seconds_left() or 0) > 2_000

        await asyncio.sleep(SNAPSHOT_INTERVAL_S * 2)
        scrape_ids = set()
        for _ in range(40):
            text, request_id = await scrape(replica)
            scrape_ids.add(request_id)
            assert value(text, "pandadoc_proxy_token_expires_in_seconds") > 2_000
            assert value(text, "pandadoc_proxy_authorization_state", state="connected") == 1
            if len(replicas_of(replica, scrape_ids)) == 2:
                break
        assert len(replicas_of(replica, scrape_ids)) == 2, "the scrapes did not reach both"
    finally:
        assert await replica.stop() == 0


def metrics_directory_of(supervisor_pid: int) -> Path:
    """The directory the supervisor named to its first worker (``--metrics-dir``)."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text()
    command = Path(f"/proc/{children.split()[0]}/cmdline").read_bytes().split(b"\0")
    return Path(command[command.index(b"--metrics-dir") + 1].decode())


def private(directory: Path) -> bool:
    return directory.stat().st_mode & 0o077 == 0


def exists(path: Path) -> bool:
    return path.exists()


@pytest.mark.slow
async def test_the_workers_share_a_private_directory_that_is_gone_once_serve_stops(
    tmp_path: Path, config: Config
) -> None:
    replica = await ProxyProcess.start(write_config(tmp_path / "proxy.yaml", config), workers=2)
    try:
        directory = metrics_directory_of(replica.process.pid)
        assert private(directory), "readable by other users"
        await wait_until(lambda: len(list(directory.glob("*.json"))) == 2)
    finally:
        assert await replica.stop() == 0
    assert not exists(directory)
