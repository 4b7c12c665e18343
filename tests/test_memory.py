"""Responses are streamed: the proxy's memory does not grow with the size of a download."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from conftest import ProxyProcess

from proxy.config import Config
from proxy.emulator.testing import download_bytes_sha256
from proxy.tokens import StoredPair

MiB = 1024 * 1024


@pytest.mark.slow
async def test_a_300_mb_download_grows_the_proxys_memory_by_less_than_64_mb(
    spawn_proxy: Callable[..., Awaitable[ProxyProcess]], config: Config, connected: StoredPair
) -> None:
    replica = await spawn_proxy(config)
    size = 300 * MiB
    async with aiohttp.ClientSession() as session:
        # Warm up (imports, pools, first allocations) before taking the baseline.
        async with session.get(f"{replica.url}/test/download?size={MiB}") as response:
            await response.read()
        baseline = replica.rss_peak_kib()
        digest = hashlib.sha256()
        received = 0
        async with session.get(f"{replica.url}/test/download?size={size}") as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
    growth_mib = (replica.rss_peak_kib() - baseline) / 1024
    assert received == size
    assert digest.hexdigest() == download_bytes_sha256(size)
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.1f} MiB"
    print(f"\n300 MB download through the proxy: peak RSS grew by {growth_mib:.1f} MiB")
