"""``pandadoc-proxy emulator`` as users run it in their CI: a process, steered by its flags."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def emulator_process(*flags: str) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "emulator", "--port", str(port), *flags,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        async with asyncio.timeout(20):
            while b"PandaDoc emulator on" not in await process.stderr.readline():
                pass
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def token(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.post(f"{url}/_emulator/tokens") as response:
        pair = await response.json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def test_the_command_line_turns_on_rate_limits_with_their_variant() -> None:
    flags = ("--rate-limits", "--rate-limit", "listDocuments=2", "--rate-limit-detail", "expected")
    async with emulator_process(*flags) as url, aiohttp.ClientSession() as session:
        auth = await token(session, url)
        statuses = []
        for _ in range(3):
            async with session.get(f"{url}/public/v1/documents", headers=auth) as response:
                statuses.append(response.status)
                body = await response.json()
        assert statuses == [200, 200, 429]
        assert body["detail"].startswith("Request was throttled. Expected available in ")


async def test_the_command_line_injects_faults() -> None:
    fault = "match=listMembers,kind=status,value=503,times=1"
    async with emulator_process("--fault", fault) as url, aiohttp.ClientSession() as session:
        auth = await token(session, url)
        statuses = []
        for _ in range(2):
            async with session.get(f"{url}/public/v1/members", headers=auth) as response:
                statuses.append(response.status)
        assert statuses == [503, 200]


@pytest.mark.parametrize(
    "flags", [["--fault", "kind=reset"], ["--rate-limit", "x"], ["--processing-delay", "-1"]]
)
def test_a_bad_flag_exits_2_naming_it(flags: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "emulator", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert flags[0] in result.stderr
