"""The command line (contract sections 1 and 7).

Exit status: 0 on success, 2 on a configuration error (one line on stderr naming the file, the
key and the problem), 1 on any other failure (one line on stderr). ``token status`` exits 1
when no usable token is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .config import Config, ConfigError, ListenConfig, load_config, secret_values
from .moments import describe_moment

if TYPE_CHECKING:
    # Imported where a command needs them: --help and check-config load neither aiohttp nor
    # the server nor the emulator.
    from aiohttp import web

    from .tokens import StoredPair

if TYPE_CHECKING:
    from .workers import WorkerCount

__all__ = ["main"]

CONFIG_ENV = "PANDADOC_PROXY_CONFIG"

T = TypeVar("T")


class CommandFailed(Exception):
    """A one-line reason for exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(emulator_options=argv[:1] == ["emulator"])
    args = parser.parse_args(argv)
    # One-shot commands answer with their own one line; the servers set up real logging.
    logging.getLogger().addHandler(logging.NullHandler())
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as exc:
        print(f"pandadoc-proxy: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"pandadoc-proxy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _parser(*, emulator_options: bool = True) -> argparse.ArgumentParser:
    """The command line. The emulator's options import the emulator, so they are added only
    when the ``emulator`` command is the one given (``emulator_options``)."""
    parser = argparse.ArgumentParser(
        prog="pandadoc-proxy",
        description=(
            "A reverse proxy that lets apps call the PandaDoc API without OAuth: it adds the "
            "bearer token, shares it between replicas through Redis and refreshes it."
        ),
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the proxy in the foreground")
    _add_config_option(serve)
    serve.add_argument("--host", help="listen on this address instead of listen.host")
    serve.add_argument("--port", type=int, help="listen on this port instead of listen.port")
    serve.add_argument(
        "--workers",
        type=int,
        help=(
            "processes serving the one port, each a full replica (default: one per CPU this "
            "process may use, from its CPU affinity and cgroup CPU quota)"
        ),
    )
    # Set by the supervisor for its workers: several sockets on one port (SO_REUSEPORT), and
    # the directory where they share their metrics (metrics_merge.py).
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--metrics-dir", type=Path, help=argparse.SUPPRESS)
    serve.set_defaults(command=_serve)

    check = commands.add_parser("check-config", help="validate a configuration file")
    _add_config_option(check)
    check.set_defaults(command=_check_config)

    token = commands.add_parser("token", help="inspect or change the stored token pair")
    token_commands = token.add_subparsers(title="token commands", metavar="ACTION", required=True)
    status = token_commands.add_parser("status", help="is a usable token stored? (never prints it)")
    _add_config_option(status)
    status.set_defaults(command=_token_status)
    set_ = token_commands.add_parser("set", help="store a token pair obtained elsewhere")
    _add_config_option(set_)
    set_.add_argument(
        "--access-token",
        required=True,
        help="the access token (write --access-token=VALUE if it begins with '-')",
    )
    set_.add_argument(
        "--refresh-token",
        required=True,
        help="the refresh token (write --refresh-token=VALUE if it begins with '-')",
    )
    set_.add_argument(
        "--expires-in", type=float, help="seconds until the access token expires, if known"
    )
    set_.set_defaults(command=_token_set)
    exchange = token_commands.add_parser(
        "exchange", help="exchange an authorization code (the manual flow) and store the pair"
    )
    _add_config_option(exchange)
    exchange.add_argument("--code", required=True, help="the code PandaDoc sent to redirect_uri")
    exchange.set_defaults(command=_token_exchange)
    refresh = token_commands.add_parser(
        "refresh", help="refresh the token now, under the same lock as the running proxies"
    )
    _add_config_option(refresh)
    refresh.set_defaults(command=_token_refresh)

    demo = commands.add_parser(
        "demo", help="run the PandaDoc emulator and the proxy in front of it, already connected"
    )
    demo.add_argument("--host", default="127.0.0.1", help="the proxy's address (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="the proxy's port (8080)")
    demo.add_argument(
        "--emulator-port", type=int, default=0, help="the emulator's port (default: any free one)"
    )
    demo.add_argument("--redis-url", help="keep the token in this Redis instead of in the process")
    demo.set_defaults(command=_demo)

    emulator = commands.add_parser(
        "emulator", help="run the PandaDoc emulator alone, for integration tests of your apps"
    )
    if emulator_options:
        from .emulator.options import add_emulator_arguments

        add_emulator_arguments(emulator)
    emulator.set_defaults(command=_emulator)
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get(CONFIG_ENV),
        help=f"the YAML configuration file (default: ${CONFIG_ENV})",
    )


def _config(args: argparse.Namespace) -> Config:
    if not args.config:
        raise ConfigError(
            "(no file)", "", f"no configuration file: pass --config PATH or set {CONFIG_ENV}"
        )
    return load_config(args.config)


# --- serve, check-config -------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from .server import catch_stop_signals

    # First: a SIGTERM from here on is a clean stop, however early it comes.
    catch_stop_signals()

    from .app import create_app
    from .logs import configure_logging
    from .metrics_merge import share_metrics
    from .server import ListenError, run, serve_until_stopped, start_site
    from .workers import WorkerCount, affinity_cpus, default_workers

    config = _config(args)
    listen = dataclasses.replace(
        config.listen,
        host=args.host or config.listen.host,
        port=config.listen.port if args.port is None else args.port,
    )
    if args.workers is not None and args.workers < 1:
        raise CommandFailed("--workers must be at least 1")
    workers = (
        default_workers(affinity_cpus())
        if args.workers is None
        else WorkerCount(args.workers, "--workers")
    )
    if workers.count > 1:
        return _serve_workers(args, listen, workers)
    configure_logging(config.logging, secrets=secret_values(config))

    async def started() -> list[web.AppRunner]:
        app = create_app(config)
        if args.metrics_dir is not None:
            share_metrics(app, args.metrics_dir)
        runner, port = await start_site(
            app,
            listen.host,
            listen.port,
            access_log=False,  # The app writes its own (logging.access_log says whether).
            drain_timeout_s=listen.drain_timeout_s,
            reuse_port=args.reuse_port,
        )
        # A supervisor's worker says only where; the supervisor said how many and why.
        how_many = "" if args.reuse_port else f" with {workers.describe()}"
        print(
            f"pandadoc-proxy serving on http://{listen.host}:{port}{how_many}",
            file=sys.stderr,
            flush=True,
        )
        return [runner]

    try:
        run(serve_until_stopped(started))
    except ListenError as exc:
        raise CommandFailed(str(exc)) from None
    return 0


def _serve_workers(args: argparse.Namespace, listen: ListenConfig, workers: WorkerCount) -> int:
    from .metrics_merge import snapshots_parent
    from .server import stop_requested
    from .workers import check_port_free, supervise

    problem = check_port_free(listen.host, listen.port)
    if problem:
        raise CommandFailed(problem)
    worker_args = [
        "serve", "--config", args.config, "--host", listen.host, "--port", str(listen.port),
        "--workers", "1", "--reuse-port",
    ]  # fmt: skip
    print(
        f"pandadoc-proxy: {workers.describe()} on http://{listen.host}:{listen.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        # Where the workers share their metrics (metrics_merge.py); gone when serve exits.
        shared = tempfile.TemporaryDirectory(
            prefix="pandadoc-proxy-metrics-", dir=snapshots_parent()
        )
    except OSError as exc:
        raise CommandFailed(f"cannot create the workers' metrics directory: {exc}") from None
    with shared as metrics_dir:
        return supervise(
            [*worker_args, "--metrics-dir", metrics_dir],
            workers.count,
            listen.drain_timeout_s,
            stop_requested=stop_requested,
        )


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(
        f"{args.config}: OK (upstream {config.upstream.base_url}, redis prefix "
        f"{config.redis.key_prefix!r})"
    )
    return 0


# --- token commands ---------------------------------------------------------------------------


def _with_store(args: argparse.Namespace, action: Callable[[Config, Any], Awaitable[T]]) -> T:
    """Run ``action(config, store)`` against the configured Redis, closing it afterwards."""
    from .tokens import RedisTokenStore, TokenStoreError

    config = _config(args)

    async def body() -> T:
        store = RedisTokenStore.from_config(config)
        try:
            return await action(config, store)
        except TokenStoreError as exc:
            raise CommandFailed(f"token store unreachable ({exc})") from None
        finally:
            await store.close()

    return asyncio.run(body())


def _with_tokens(
    args: argparse.Namespace,
    action: Callable[[Config, Any], Awaitable[T]],
    *,
    failure: str = "failed",
) -> T:
    """Run ``action(config, tokens)`` with the token manager every replica uses (so the
    command line writes the pair the way they do, fenced and announced), closing it after.
    A refusal of the proxy's own (no token stored, the token endpoint failing) is reported
    as ``FAILURE: why``."""
    from .errors import ProxyError
    from .tokens.manager import TokenManager

    async def with_manager(config: Config, store: Any) -> T:
        import aiohttp

        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            tokens = TokenManager(
                store, session, config.oauth, config.tokens, owner="cli", cache_s=0.0
            )
            try:
                return await action(config, tokens)
            except ProxyError as exc:
                raise CommandFailed(f"{failure}: {exc.message}") from None
            finally:
                await tokens.close()

    return _with_store(args, with_manager)


def _describe_time(epoch: float | None) -> str:
    return describe_moment(epoch, decimals=1)


def _stored(pair: StoredPair) -> int:
    """What ``token set``, ``exchange`` and ``refresh`` say once the pair is in the store."""
    print(f"stored token pair version {pair.version}; expires {_describe_time(pair.expires_at)}")
    return 0


def _token_status(args: argparse.Namespace) -> int:
    from .tokens import RedisTokenStore

    async def status(config: Config, store: RedisTokenStore) -> StoredPair | None:
        return await store.load()

    pair = _with_store(args, status)
    if pair is None:
        print("token: none stored (connect the proxy to PandaDoc: GET /_proxy/ on the proxy)")
        return 1
    if not pair.usable:
        print(f"token: stored, but authorization lost ({pair.authorization_lost})")
        print("connect the proxy again: GET /_proxy/ on the proxy, or `token exchange`")
        return 1
    print("token: stored")
    if pair.refresh_error:
        print(f"refresh failing: {pair.refresh_error} ({_describe_time(pair.refresh_failed_at)})")
    print(f"version: {pair.version}")
    print(f"expires: {_describe_time(pair.expires_at)}")
    print(f"last refreshed: {_describe_time(pair.obtained_at)} by {pair.obtained_by}")
    return 0


def _token_set(args: argparse.Namespace) -> int:
    from .tokens import NewTokens
    from .tokens.manager import TokenManager
    from .tokens.model import sane_expires_in

    if not args.access_token.strip() or not args.refresh_token.strip():
        raise CommandFailed("the access token and the refresh token must not be empty")
    if args.expires_in is not None and not 0 < args.expires_in < float("inf"):
        raise CommandFailed("--expires-in must be a positive number of seconds")
    expires_in = sane_expires_in(args.expires_in, source="--expires-in")
    tokens = NewTokens(args.access_token.strip(), args.refresh_token.strip(), expires_in)

    async def store_pair(config: Config, manager: TokenManager) -> StoredPair:
        return await manager.replace(tokens, obtained_by="cli")

    pair = _with_tokens(args, store_pair, failure="storing the pair failed")
    return _stored(pair)


def _token_exchange(args: argparse.Namespace) -> int:
    from .tokens.manager import TokenManager
    from .tokens.oauth import TokenEndpointError, exchange_code

    async def exchange(config: Config, manager: TokenManager) -> StoredPair:
        import aiohttp

        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            try:
                tokens = await exchange_code(session, config.oauth, args.code.strip())
            except TokenEndpointError as exc:
                raise CommandFailed(f"the code exchange failed: {exc}") from None
        return await manager.replace(tokens, obtained_by="cli")

    pair = _with_tokens(args, exchange, failure="the code exchange failed")
    return _stored(pair)


def _token_refresh(args: argparse.Namespace) -> int:
    from .tokens.manager import TokenManager

    async def refresh(config: Config, manager: TokenManager) -> StoredPair:
        return await manager.refresh_now()

    pair = _with_tokens(args, refresh, failure="refresh failed")
    return _stored(pair)


# --- demo, emulator ---------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .config import LoggingConfig
    from .demo import start_demo
    from .logs import configure_logging
    from .server import ListenError, run, serve_until_stopped

    configure_logging(LoggingConfig(format="text"))

    async def started() -> list[web.AppRunner]:
        return await start_demo(
            args.host, args.port, redis_url=args.redis_url, emulator_port=args.emulator_port
        )

    try:
        run(serve_until_stopped(started))
    except ListenError as exc:
        raise CommandFailed(str(exc)) from None
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .config import LoggingConfig
    from .emulator import create_emulator_app
    from .emulator.options import settings_from_args
    from .logs import configure_logging
    from .server import ListenError, run, serve_until_stopped, start_site

    configure_logging(LoggingConfig(format="text"))
    settings = settings_from_args(args)

    async def started() -> list[web.AppRunner]:
        runner, port = await start_site(
            # The emulator plays PandaDoc: aiohttp's own answers, not the proxy's.
            create_emulator_app(settings),
            args.host,
            args.port,
            runner_class=web.AppRunner,
        )
        print(
            f"PandaDoc emulator on http://{args.host}:{port} "
            f"(client_id {settings.client_id}); routes listed at /",
            file=sys.stderr,
            flush=True,
        )
        return [runner]

    try:
        run(serve_until_stopped(started))
    except ListenError as exc:
        raise CommandFailed(str(exc)) from None
    return 0
