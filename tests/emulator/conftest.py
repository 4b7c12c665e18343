"""Fixtures for the emulator's own tests: the emulator on a real socket, the official
PandaDoc SDK pointed at it, and a real webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pandadoc_client import ApiClient, Configuration

from proxy.emulator import EMULATOR_STATE, EmulatorSettings, EmulatorState, create_emulator_app

from .emulator_helpers import Client, Receiver, Sdk, bearer


@pytest.fixture
def settings() -> EmulatorSettings:
    return EmulatorSettings()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: EmulatorSettings
) -> Client:
    return await aiohttp_client(create_emulator_app(settings))


@pytest.fixture
def state(client: Client) -> EmulatorState:
    return client.app[EMULATOR_STATE]


@pytest.fixture
def token(state: EmulatorState) -> str:
    return str(state.issue_pair()["access_token"])


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return bearer(token)


@pytest.fixture
def sdk(client: Client, token: str, tmp_path: Path) -> Iterator[Sdk]:
    """``await sdk(DocumentsApi, "list_documents", count=5)``: one SDK call, in a thread (the
    SDK blocks; the emulator must keep serving on this loop meanwhile)."""
    configuration = Configuration(host=str(client.make_url("")).rstrip("/"), access_token=token)
    configuration.temp_folder_path = str(tmp_path)
    api_client = ApiClient(configuration)

    async def call(api: type, operation: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(api(api_client), operation)
        return await asyncio.to_thread(method, *args, **kwargs)

    yield call
    api_client.close()
    api_client.rest_client.pool_manager.clear()


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    """A webhook receiver on a real socket; its URL carries a query of its own."""
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hooks.hook)
    server = await aiohttp_server(app)
    hooks.url = str(server.make_url("/hook?tenant=7"))
    return hooks
