"""Shared fixtures: a throwaway redis-server, the PandaDoc emulator, and proxies in front of it.

Everything is real: Redis is a ``redis-server`` process on a free port (never the one on 6379),
the emulator and the proxies are aiohttp apps served over real sockets.

The event loop is the one ``serve`` runs on, uvloop, unless ``PANDADOC_PROXY_TEST_LOOP=asyncio``
asks for asyncio's own; tests marked ``every_loop`` run on both (see
``pytest_asyncio_loop_factories`` below).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy import create_app
from proxy.config import Config, parse_config
from proxy.emulator import EMULATOR_STATE, EmulatorSettings, EmulatorState, create_emulator_app
from proxy.server import ProxyAppRunner
from proxy.throwaway_redis import ThrowawayRedis, free_port
from proxy.tokens import NewTokens, RedisTokenStore, StoredPair

REPO = Path(__file__).resolve().parent.parent

#: The event loops the tests can run on: uvloop is what ``serve`` runs on (proxy/server.py).
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}
TEST_LOOP_ENV = "PANDADOC_PROXY_TEST_LOOP"


def pytest_configure(config: pytest.Config) -> None:
    loop = os.environ.get(TEST_LOOP_ENV, "uvloop")
    if loop not in LOOP_FACTORIES:
        raise pytest.UsageError(
            f"{TEST_LOOP_ENV}={loop!r}: expected one of {', '.join(LOOP_FACTORIES)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"event loop: {os.environ.get(TEST_LOOP_ENV, 'uvloop')} ({TEST_LOOP_ENV})"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop each async test (and its fixtures) runs on: pytest-asyncio's supported way
    (1.4+) to choose it, instead of overriding the deprecated ``event_loop_policy`` fixture.

    One loop, named by ``PANDADOC_PROXY_TEST_LOOP`` (default: uvloop, as shipped); a test marked
    ``every_loop`` runs once on each, with the loop's name in its id.
    """
    if item.get_closest_marker("every_loop"):
        return LOOP_FACTORIES
    name = os.environ.get(TEST_LOOP_ENV, "uvloop")
    return {name: LOOP_FACTORIES[name]}


class RedisServer(ThrowawayRedis):
    """A throwaway ``redis-server`` for tests (proxy/throwaway_redis.py); a missing binary
    fails the test with the install command."""

    def __init__(self) -> None:
        try:
            super().__init__()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)

    def start(self, within_s: float = 10.0) -> None:
        try:
            super().start(within_s)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis shared by the session's tests (each test has a key prefix of its own)."""
    server = RedisServer()
    server.start()
    yield server.url
    server.remove()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis for one test alone, which the test may stop and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def key_prefix() -> str:
    """A prefix of its own for every test, so tests never see each other's tokens."""
    return f"test-{uuid.uuid4().hex[:12]}"


@dataclass
class Emulator:
    server: TestServer
    app: web.Application

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def state(self) -> EmulatorState:
        return self.app[EMULATOR_STATE]

    @property
    def settings(self) -> EmulatorSettings:
        return self.state.settings


@pytest.fixture
async def emulator(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Emulator:
    app = create_emulator_app(EmulatorSettings())
    return Emulator(await aiohttp_server(app), app)


def proxy_config(
    emulator_url: str, redis_url: str, key_prefix: str, **sections: dict[str, Any]
) -> Config:
    """A configuration pointing at the emulator and the test Redis, with overrides per section."""
    data: dict[str, Any] = {
        "upstream": {"base_url": emulator_url, "timeout_s": 5},
        "oauth": {
            "client_id": "emulator-client",
            "client_secret": "emulator-secret",
            "authorize_url": f"{emulator_url}/oauth2/authorize",
            "token_url": f"{emulator_url}/oauth2/access_token",
        },
        "redis": {"url": redis_url, "key_prefix": key_prefix},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data, source="<test>")


@pytest.fixture
def config(emulator: Emulator, redis_url: str, key_prefix: str) -> Config:
    return proxy_config(emulator.url, redis_url, key_prefix)


@pytest.fixture
async def store(redis_url: str, key_prefix: str) -> AsyncIterator[RedisTokenStore]:
    """Direct access to the token store the proxies under test share."""
    token_store = RedisTokenStore.from_config(proxy_config("http://unused", redis_url, key_prefix))
    yield token_store
    await token_store.close()


@pytest.fixture
async def connected(emulator: Emulator, store: RedisTokenStore) -> StoredPair:
    """A pair minted by the emulator, stored as if someone had connected the proxy."""
    tokens = NewTokens.from_token_response(emulator.state.issue_pair())
    return await store.save(tokens, expected_version=0, obtained_by="test")


class ProxyTestServer(TestServer):
    """A test server run the way ``serve`` runs the proxy (its own answers to parser errors).

    aiohttp's test server cancels a handler whose client disconnects (``handler_cancellation``);
    ``serve`` does not, so neither does this one: a client that goes away must meet the code
    paths it meets in production.
    """

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return ProxyAppRunner(self.app, **kwargs)


MakeProxy = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    emulator: Emulator,
    redis_url: str,
    key_prefix: str,
) -> MakeProxy:
    """``await make_proxy(limits={...}, ...)``: a replica served the way ``serve`` serves it,
    with overrides per config section; ``upstream_url`` and ``redis`` replace the emulator and
    the test Redis (an unreachable one, say). Not connected unless the test asks for
    ``connected``."""

    async def make(
        *, upstream_url: str | None = None, redis: str | None = None, **sections: dict[str, Any]
    ) -> TestClient[web.Request, web.Application]:
        config = proxy_config(
            upstream_url or emulator.url, redis or redis_url, key_prefix, **sections
        )
        return await aiohttp_client(ProxyTestServer(create_app(config)))

    return make


@pytest.fixture
async def proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    config: Config,
    connected: StoredPair,
) -> TestClient[web.Request, web.Application]:
    """A client for one proxy replica, already connected to the emulator."""
    return await aiohttp_client(ProxyTestServer(create_app(config)))


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m proxy ARGS`` to completion, as a user would from a shell."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "proxy", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=REPO,
        )

    return run


async def raw_exchange(port: int, data: bytes, *, wait_s: float = 5.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        try:
            async with asyncio.timeout(wait_s):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)
    finally:
        writer.close()


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def write_config(path: Path, config: Config) -> Path:
    """Write ``config`` as the YAML file a user would write."""
    import dataclasses

    import yaml

    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    return path


class ProxyProcess:
    """``python -m proxy serve`` as a separate process: a replica as it runs in production."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        #: Everything the process wrote to stderr (its logs); a file, so it never blocks.
        self.log_path = log_path

    @classmethod
    async def start(
        cls,
        config_path: Path,
        *,
        port: int | None = None,
        workers: int | None = 1,
        launcher: Sequence[str] = (),
    ) -> ProxyProcess:
        """``workers=None`` leaves the count to ``serve``; ``launcher`` goes before the
        command (``["taskset", "-c", "0"]``)."""
        port = port or free_port()
        log_path = config_path.with_suffix(".log")
        workers_option = [] if workers is None else ["--workers", str(workers)]
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                *launcher,
                sys.executable,
                "-m",
                "proxy",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(port),
                *workers_option,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                cwd=REPO,
            )
        replica = cls(process, port, log_path)
        try:
            await replica.wait_until_healthy()
        except BaseException:
            # Never leave a half-started replica running after the test that wanted it.
            await replica.stop()
            raise
        return replica

    async def wait_until_healthy(self, wait_s: float = 20.0) -> None:
        import aiohttp

        async with asyncio.timeout(wait_s), aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"proxy exited with {self.process.returncode}")
                try:
                    async with session.get(f"{self.url}/_proxy/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    async def wait_for_log(self, text: str, *, times: int = 1, within_s: float = 20.0) -> None:
        """Until the process's log has ``text`` on ``times`` lines (once per worker, say)."""

        def seen() -> bool:
            lines = self.log_path.read_text(errors="replace").splitlines()
            return sum(text in line for line in lines) >= times

        await wait_until(seen, within_s=within_s)

    def rss_peak_kib(self) -> int:
        """The process's peak resident memory so far (VmHWM), in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1])

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    async def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(20):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


@pytest.fixture
async def spawn_proxy(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[ProxyProcess]]]:
    """Start proxy processes from a Config; all of them are stopped after the test."""
    started: list[ProxyProcess] = []

    async def spawn(config: Config, *, port: int | None = None, workers: int = 1) -> ProxyProcess:
        path = write_config(tmp_path / f"proxy-{len(started)}.yaml", config)
        replica = await ProxyProcess.start(path, port=port, workers=workers)
        started.append(replica)
        return replica

    yield spawn
    for replica in started:
        await replica.stop()


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, within_s: float = 10.0
) -> None:
    """Poll ``condition`` until it holds: for state of other components that no event announces
    (an emulator counter, a key in Redis). Fails the test after ``within_s``."""
    async with asyncio.timeout(within_s):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.002)
