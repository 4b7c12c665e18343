"""Contract sections 1 and 7: the command line, as a user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import REPO, Emulator, ProxyProcess, free_port, proxy_config, wait_until, write_config

from proxy.config import Config
from proxy.tokens import RedisTokenStore, StoredPair

RunCli = Callable[..., Any]


@pytest.fixture
def config_file(tmp_path: Path, config: Config) -> Path:
    return write_config(tmp_path / "proxy.yaml", config)


# --- help and config ---------------------------------------------------------------------------


def test_help_describes_every_command(run_cli: RunCli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "check-config", "token", "demo", "emulator"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["check-config"],
        ["token", "status"],
        ["token", "set"],
        ["demo"],
        ["emulator"],
        ["token", "exchange"],
    ],
)
def test_every_subcommand_has_help(run_cli: RunCli, command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_check_config_accepts_a_valid_file(run_cli: RunCli, config_file: Path) -> None:
    result = run_cli("check-config", "--config", str(config_file))
    assert result.returncode == 0, result.stderr


def test_check_config_rejects_a_bad_file_with_status_2_and_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("oauth:\n  client_id: a\n  client_secret: ${UNSET_FOR_THIS_TEST}\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0]
    assert "oauth.client_secret" in lines[0]


def test_the_config_file_can_come_from_the_environment(run_cli: RunCli, config_file: Path) -> None:
    result = run_cli("check-config", env={"PANDADOC_PROXY_CONFIG": str(config_file)})
    assert result.returncode == 0, result.stderr


def test_no_config_at_all_is_a_configuration_error(run_cli: RunCli) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PANDADOC_PROXY_CONFIG"}
    result = run_cli("check-config", env=env)
    assert result.returncode == 2
    assert "PANDADOC_PROXY_CONFIG" in result.stderr


def test_serve_with_a_bad_config_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("oauth: {client_id: a, client_secret: b}\nlisten: {port: nope}\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "listen.port" in result.stderr


# --- serve -------------------------------------------------------------------------------------


async def test_serve_forwards_and_exits_0_on_sigterm(
    config_file: Path, connected: StoredPair, emulator: Emulator
) -> None:
    replica = await ProxyProcess.start(config_file)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/public/v1/documents") as response,
    ):
        assert response.status == 200
    assert await replica.stop() == 0


async def test_serve_exits_0_on_sigint(config_file: Path) -> None:
    replica = await ProxyProcess.start(config_file)
    replica.process.send_signal(signal.SIGINT)
    assert await replica.process.wait() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_on_a_port_in_use_exits_1_with_one_line(
    config_file: Path, workers: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "serve",
            "--config",
            str(config_file),
            "--port",
            str(port),
            "--workers",
            workers,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert f"{port}" in stderr.decode()
    assert len(stderr.decode().strip().splitlines()) == 1


async def test_serve_with_workers_runs_that_many_replicas_on_one_port_and_stops_them_all(
    tmp_path: Path, config_file: Path, connected: StoredPair
) -> None:
    replica = await ProxyProcess.start(config_file, workers=2)
    seen: set[str] = set()

    async def both_workers_answered() -> bool:
        # A new connection each time: the kernel spreads them over the workers. The first
        # worker to be ready may answer alone for a while, until the second one listens.
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{replica.url}/_proxy/") as response,
        ):
            page = await response.text()
            seen.add(page.split("This replica</th><td>")[1].split("<")[0])
            assert response.status == 200
        return len(seen) == 2

    await wait_until(both_workers_answered, within_s=20)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/public/v1/documents") as response,
    ):
        assert response.status == 200
    worker_pids = child_pids(replica.process.pid)
    assert len(worker_pids) == 2
    assert await replica.stop() == 0
    assert not any(process_exists(pid) for pid in worker_pids)


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def process_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


# --- token set / status ------------------------------------------------------------------------


def test_token_status_without_a_token_exits_1(run_cli: RunCli, config_file: Path) -> None:
    result = run_cli("token", "status", "--config", str(config_file))
    assert result.returncode == 1
    assert "none stored" in result.stdout


def test_token_set_stores_a_pair_that_status_then_reports(
    run_cli: RunCli, config_file: Path
) -> None:
    result = run_cli(
        "token",
        "set",
        "--config",
        str(config_file),
        "--access-token",
        "access-secret-value",
        "--refresh-token",
        "refresh-secret-value",
        "--expires-in",
        "3600",
    )
    assert result.returncode == 0, result.stderr
    status = run_cli("token", "status", "--config", str(config_file))
    assert status.returncode == 0
    assert "token: stored" in status.stdout
    expires = next(line for line in status.stdout.splitlines() if line.startswith("expires:"))
    assert "(in 60.0 minutes)" in expires or "(in 1.0 hours)" in expires
    for output in (result.stdout, result.stderr, status.stdout, status.stderr):
        assert "access-secret-value" not in output
        assert "refresh-secret-value" not in output


async def test_token_status_exits_1_once_authorization_is_lost(
    run_cli: RunCli, config_file: Path, store: RedisTokenStore, connected: StoredPair
) -> None:
    await store.mark_authorization_lost(connected.version, "refresh token rejected")
    result = await asyncio.to_thread(run_cli, "token", "status", "--config", str(config_file))
    assert result.returncode == 1
    assert "authorization lost" in result.stdout


async def test_a_pair_set_on_the_command_line_is_used_by_a_running_proxy(
    run_cli: RunCli, config_file: Path, emulator: Emulator, store: RedisTokenStore
) -> None:
    pair = emulator.state.issue_pair()
    result = await asyncio.to_thread(
        run_cli,
        "token",
        "set",
        "--config",
        str(config_file),
        "--access-token",
        str(pair["access_token"]),
        "--refresh-token",
        str(pair["refresh_token"]),
    )
    assert result.returncode == 0, result.stderr
    stored = await store.load()
    assert stored is not None
    assert stored.access_token == pair["access_token"]
    assert stored.obtained_by == "cli"


def test_token_commands_with_redis_down_exit_1_with_a_reason(
    run_cli: RunCli, tmp_path: Path, emulator: Emulator, key_prefix: str
) -> None:
    config = proxy_config(emulator.url, f"redis://127.0.0.1:{free_port()}/0", key_prefix)
    path = write_config(tmp_path / "down.yaml", config)
    result = run_cli("token", "status", "--config", str(path))
    assert result.returncode == 1
    assert "unreachable" in result.stderr


async def test_token_refresh_renews_the_stored_pair_once(
    run_cli: RunCli,
    config_file: Path,
    emulator: Emulator,
    store: RedisTokenStore,
    connected: StoredPair,
) -> None:
    result = await asyncio.to_thread(run_cli, "token", "refresh", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    assert emulator.state.token_calls["refresh_token"] == 1
    stored = await store.load()
    assert stored is not None
    assert stored.version == connected.version + 1
    assert stored.obtained_by == "cli"
    assert stored.refresh_token not in result.stdout + result.stderr


async def test_token_refresh_with_a_revoked_refresh_token_exits_1_with_a_reason(
    run_cli: RunCli, config_file: Path, emulator: Emulator, connected: StoredPair
) -> None:
    emulator.state.revoke_refresh_tokens()
    result = await asyncio.to_thread(run_cli, "token", "refresh", "--config", str(config_file))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "refresh failed" in result.stderr


# --- demo and emulator -------------------------------------------------------------------------


async def read_until(stream: asyncio.StreamReader, marker: bytes, wait_s: float = 20) -> bytes:
    seen = b""
    async with asyncio.timeout(wait_s):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stream ended before {marker!r}: {seen!r}")
            seen += line
    return seen


async def test_demo_starts_connected_and_serves_documents_without_redis() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "demo",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PANDADOC_PROXY_CONFIG": ""},
    )
    try:
        assert process.stdout is not None
        banner = await read_until(process.stdout, b"curl -i")
        assert f"http://127.0.0.1:{port}/public/v1/documents".encode() in banner
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/public/v1/documents") as response:
                assert response.status == 200
                assert (await response.json())["results"]
            async with session.get(f"http://127.0.0.1:{port}/_proxy/ready") as response:
                assert response.status == 200
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


@contextlib.asynccontextmanager
async def emulator_command() -> AsyncIterator[str]:
    """``pandadoc-proxy emulator`` as a process, as users run it in their CI; its base URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "emulator", "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        await read_until(process.stderr, b"PandaDoc emulator on")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_the_emulator_command_serves_the_token_endpoint() -> None:
    async with (
        emulator_command() as url,
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/oauth2/access_token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "unknown",
                "client_id": "emulator-client",
                "client_secret": "emulator-secret",
            },
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_grant"


async def test_the_emulator_command_serves_many_requests_on_one_keep_alive_connection() -> None:
    # Regression: the access logger raised for apps without a replica id (the emulator's), and
    # aiohttp then dropped the connection after every response.
    async with (
        emulator_command() as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session,
    ):
        async with session.post(f"{url}/_emulator/tokens") as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(20):
            async with session.post(
                f"{url}/test/upload", data=b"x" * 100_000, headers=headers
            ) as response:
                assert response.status == 200
                await response.read()


@pytest.mark.parametrize(
    "args",
    [["--help"], ["check-config", "--config", "{config}"]],
    ids=["help", "check-config"],
)
def test_help_and_check_config_load_neither_aiohttp_nor_the_server_nor_the_emulator(
    config_file: Path, args: list[str]
) -> None:
    argv = [arg.format(config=config_file) for arg in args]
    probe = (
        "import sys\n"
        "from proxy.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('aiohttp', 'redis', 'proxy.server', 'proxy.app', 'proxy.emulator.app')\n"
        "heavy = [name for name in heavy if name in sys.modules]\n"
        "print('LOADED:' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "LOADED:"
