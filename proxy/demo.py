"""``pandadoc-proxy demo``: the emulator and the proxy in one process, already connected.

No PandaDoc account and no Redis are needed: the emulator plays PandaDoc on a free local port,
a token pair is minted as if someone had clicked "Authorize", and the proxy starts in front of
it with that pair in an in-process store (or in Redis, with ``--redis-url``).
"""

from __future__ import annotations

import dataclasses
import sys

from aiohttp import web

from .app import create_app
from .config import Config, ListenConfig, LoggingConfig, OAuthConfig, RedisConfig, UpstreamConfig
from .emulator import EMULATOR_STATE, EmulatorSettings, create_emulator_app
from .server import start_site
from .tokens import MemoryTokenStore, NewTokens, RedisTokenStore

__all__ = ["demo_config", "start_demo"]


def demo_config(host: str, port: int, emulator_url: str, settings: EmulatorSettings) -> Config:
    return Config(
        listen=ListenConfig(host=host, port=port),
        upstream=UpstreamConfig(base_url=emulator_url),
        oauth=OAuthConfig(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authorize_url=f"{emulator_url}/oauth2/authorize",
            token_url=f"{emulator_url}/oauth2/access_token",
            redirect_uri=f"http://{host}:{port}/_proxy/oauth/callback",
        ),
        redis=RedisConfig(key_prefix="pandadoc-proxy-demo"),
        logging=LoggingConfig(format="text"),
    )


async def start_demo(
    host: str, port: int, *, redis_url: str | None = None, emulator_port: int = 0
) -> list[web.AppRunner]:
    settings = EmulatorSettings(auto_approve=True)
    emulator = create_emulator_app(settings)
    emulator_runner, emulator_port = await start_site(
        emulator, "127.0.0.1", emulator_port, access_log=False, runner_class=web.AppRunner
    )
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    config = demo_config(host, port, emulator_url, settings)

    pair = NewTokens.from_token_response(emulator[EMULATOR_STATE].issue_pair())
    memory: MemoryTokenStore | None = None
    if redis_url:
        config = dataclasses.replace(config, redis=dataclasses.replace(config.redis, url=redis_url))
        seeder = RedisTokenStore.from_config(config)
        try:
            await seeder.save(pair, expected_version=None, obtained_by="demo")
        finally:
            await seeder.close()
    else:
        memory = MemoryTokenStore()
        await memory.save(pair, expected_version=None, obtained_by="demo")

    try:
        proxy_runner, port = await start_site(
            create_app(config, store=memory), host, port, access_log=False
        )
    except BaseException:
        await emulator_runner.cleanup()
        raise
    base = f"http://{host}:{port}"
    print(
        f"""
pandadoc-proxy demo: the proxy on {base} is connected to a PandaDoc emulator on {emulator_url}.
Try, in another terminal:

  curl -i {base}/public/v1/documents
  curl -i {base}/public/v1/documents/Qh4sDn9KeU6tBw2ZgXy5Mo/details
  curl -i -X POST {base}/public/v1/documents -H 'Content-Type: application/json' \\
       -d '{{"name": "Contract", "url": "https://example.com/contract.pdf"}}'
  curl -s {base}/_proxy/health
  curl -s {base}/_proxy/ready

No Authorization header is needed: the proxy adds the token. Ctrl-C stops the demo.
""",
        file=sys.stdout,
        flush=True,
    )
    return [emulator_runner, proxy_runner]
