"""How fast a new token pair reaches every replica: from its write to its use by each worker.

    .venv/bin/python bench/propagation.py                  # 3 replicas x 2 workers, 50 writes
    .venv/bin/python bench/propagation.py --writes 200 --replicas 2 --workers 4

Starts a throwaway Redis, a recording upstream inside this process, and the replicas (``serve
--workers N``), with requests flowing through every worker all the time. Then it stores a new
pair ``--writes`` times, as a refresh or ``token set`` on another replica would (the token
store's fenced write, which publishes its notice). A worker is told apart by the prefix of the
request id it sends upstream (random per process). Two figures per write, in milliseconds:

- **stale window**: until the last request that still carried the replaced token reached the
  upstream. This is the exposure that matters (a request sent with a replaced token meets
  PandaDoc's 401), and it does not depend on how often each worker happens to be sampled.
- **first use by every worker**: until every worker's first request with the new token. An
  upper bound of the propagation: it also counts each worker's wait for its next request
  (about 10 ms on average at the default pace).

Each is shown as median, 99th percentile and maximum over the writes; the issue's target is a
p99 under 50 ms. The load is steady and light (``--pace``): under a saturating load the
figures would be the machine's own queueing, not the propagation. Writer and upstream share
this process's monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from run import (  # noqa: E402  (bench/ is not a package)
    HOST,
    Services,
    _redis_ping,
    _store_token,
    free_ports,
    start_redis,
    wait_until,
    write_proxy_config,
)

from proxy.config import parse_config  # noqa: E402
from proxy.tokens import NewTokens, RedisTokenStore  # noqa: E402

#: The request id's random, per-process part (see proxy/middleware.py).
_WORKER_PREFIX = 16


class Recorder:
    """The upstream: answers 1 KiB, and notes when each worker first and last sent each token."""

    def __init__(self) -> None:
        self.first_seen: dict[tuple[str, str], float] = {}
        self.last_seen: dict[str, float] = {}
        self.workers: set[str] = set()

    def everywhere(self, header: str) -> bool:
        """Whether every worker has sent ``header``."""
        return all((worker, header) in self.first_seen for worker in self.workers)

    async def handle(self, request: web.Request) -> web.Response:
        worker = request.headers.get("X-Request-Id", "")[:_WORKER_PREFIX]
        token = request.headers.get("Authorization", "")
        now = time.monotonic()
        self.workers.add(worker)
        self.first_seen.setdefault((worker, token), now)
        self.last_seen[token] = now
        return web.Response(body=b"s" * 1024)


async def drive(urls: list[str], connections: int, pace_s: float, stop: asyncio.Event) -> int:
    """Requests through every replica on ``connections`` keep-alive connections each (the
    kernel spreads connections over a replica's workers), one every ``pace_s`` on each, until
    ``stop``. A steady, light load: a saturated machine would measure its own queueing."""
    sent = 0
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop(url: str) -> None:
            nonlocal sent
            while not stop.is_set():
                async with session.get(f"{url}/small") as response:
                    await response.read()
                sent += 1
                # Jittered, so that the connections do not fire in step: each worker then
                # sees requests spread evenly rather than in bursts one pace apart.
                await asyncio.sleep(random.uniform(0, 2 * pace_s))

        await asyncio.gather(*(loop(url) for url in urls for _ in range(connections)))
    return sent


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    services = Services(workdir)
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    redis_port, upstream_port, *proxy_ports = free_ports(2 + args.replicas)
    await web.TCPSite(runner, HOST, upstream_port).start()
    try:
        redis = start_redis(
            services, shutil.which("redis-server") or "redis-server", redis_port, workdir
        )
        wait_until("redis", redis, lambda: _redis_ping(redis_port), 10)
        redis_url = f"redis://{HOST}:{redis_port}/0"
        config_path = write_proxy_config(
            workdir, f"http://{HOST}:{upstream_port}", redis_url, access_log=False
        )
        _store_token(config_path)
        replicas = []
        for index, port in enumerate(proxy_ports):
            replica = services.start(
                f"proxy-{index}",
                [
                    *(sys.executable, "-m", "proxy", "serve", "--config", str(config_path)),
                    *("--port", str(port), "--workers", str(args.workers)),
                ],
            )
            replicas.append(replica)
        expected_workers = args.replicas * args.workers
        stop = asyncio.Event()
        # Every worker listening and subscribed before the load starts: keep-alive connections
        # opened while a replica's second worker is still starting would all stay on its first.
        for replica in replicas:
            await _until(
                functools.partial(_subscribed, replica.log_path, args.workers),
                30,
                f"{replica.name}'s workers",
            )
        load = asyncio.ensure_future(
            drive(
                [f"http://{HOST}:{port}" for port in proxy_ports],
                args.connections,
                args.pace,
                stop,
            )
        )
        await _until(lambda: len(recorder.workers) >= expected_workers, 30, "every worker")
        await asyncio.sleep(1.0)  # Every worker subscribed to the notices by now.
        store = RedisTokenStore.from_config(parse_config(_config_data(redis_url)))
        stale: list[float] = []
        first_use: list[float] = []
        try:
            replaced = "Bearer bench-access-token"  # What _store_token stored.
            for index in range(args.writes):
                current = await store.load()
                token = f"bench-access-token-{index}"
                written = time.monotonic()
                await store.save(
                    NewTokens(token, f"bench-refresh-token-{index}", 3600),
                    expected_version=current.version if current else 0,
                    obtained_by="bench",
                )
                header = f"Bearer {token}"
                await _until(
                    functools.partial(recorder.everywhere, header),
                    5,
                    f"write {index} to reach every worker",
                )
                first_use.append(
                    max(recorder.first_seen[(w, header)] for w in recorder.workers) - written
                )
                await asyncio.sleep(args.interval)  # Requests with the old token drain.
                stale.append(max(recorder.last_seen.get(replaced, 0.0) - written, 0.0))
                replaced = header
        finally:
            stop.set()
            sent = await load
            await store.close()
    finally:
        services.stop_all()
        await runner.cleanup()
    return {
        "writes": len(first_use),
        "workers": len(recorder.workers),
        "requests": sent,
        **_distribution("stale", stale),
        **_distribution("first_use", first_use),
    }


def _distribution(name: str, seconds: list[float]) -> dict[str, float]:
    ms = sorted(value * 1000 for value in seconds)
    return {
        f"{name}_p50_ms": statistics.median(ms),
        f"{name}_p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        f"{name}_max_ms": ms[-1],
    }


def _config_data(redis_url: str) -> dict[str, object]:
    return {
        "oauth": {"client_id": "bench-client", "client_secret": "bench-secret"},
        "redis": {"url": redis_url, "key_prefix": "bench"},
    }


def _subscribed(log_path: Path, workers: int) -> bool:
    """Whether ``workers`` workers logged that they listen for new token pairs."""
    text = log_path.read_text(errors="replace")
    return text.count('"event":"notices_subscribed"') >= workers


async def _until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s

    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.0005)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between writes")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.08,
        help="seconds between requests on one connection (16 x 3 connections at 0.08 s: about "
        "100 requests/s through each worker, so each worker's use is seen within ~10 ms)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="per replica (the kernel picks a worker per connection: enough to reach all)",
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pandadoc-proxy-propagation-"))
    try:
        result = asyncio.run(measure(args, workdir))
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name} (last lines)", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-8:]), file=sys.stderr)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"propagation of a new pair to every worker ({args.replicas} replicas x {args.workers} "
        f"workers, {result['workers']:.0f} seen, {result['writes']:.0f} writes, "
        f"{result['requests']:.0f} requests meanwhile):"
    )
    for name, label in (("stale", "stale window"), ("first_use", "first use by every worker")):
        print(
            f"  {label:<26} p50 {result[f'{name}_p50_ms']:6.1f} ms   "
            f"p99 {result[f'{name}_p99_ms']:6.1f} ms   max {result[f'{name}_max_ms']:6.1f} ms"
        )
    target = result["stale_p99_ms"] < 50
    print(f"target: stale window p99 under 50 ms  {'met' if target else 'MISSED'}")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
