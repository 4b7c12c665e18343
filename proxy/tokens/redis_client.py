"""The asyncio Redis client for the ``redis`` section: one server, Sentinel, or Cluster.

Everything here is redis-py's own support for each deployment; the proxy adds no failover or
routing logic of its own:

- **One server** (``redis.url``, ``redis://`` or ``rediss://`` for TLS): ``Redis.from_url``.
- **Sentinel** (``redis.sentinels`` + ``redis.sentinel_master``): ``Sentinel(...).master_for``.
  Its connection pool asks the sentinels for the master's address whenever it opens a
  connection, so after a failover the next connection goes to the promoted replica; a
  connection still open to a demoted master fails (``READONLY`` becomes a ConnectionError) and
  is replaced. ``redis.url`` then gives the master's credentials, database and TLS (its host
  and port are not used: the sentinels say where the master is); the sentinels are reached
  with ``redis.sentinel_password`` and, for a ``rediss://`` URL, over TLS with the same options.
- **Cluster** (``redis.cluster: true``): ``RedisCluster.from_url`` with ``redis.url`` as the
  seed node; the client discovers the other nodes and follows ``MOVED``/``ASK`` itself. Every key
  of one deployment carries the hash tag ``{key_prefix}``, so all of them live in one slot and
  the store's Lua scripts and redis-py's lock scripts are single-slot.

The same choices for every kind, and why:

- ``decode_responses=True``: the store reads and writes text (hash fields, lock tokens).
- ``socket_timeout`` and ``socket_connect_timeout`` are ``redis.socket_timeout_s``: a call to
  an unreachable Redis gives up after that long, instead of stalling requests.
- One retry, at once, and only after a connection error
  (``Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))``): enough for a pooled
  connection that a Redis restart or a failover has closed, short enough for a caller holding
  a token in memory, who would rather use it than wait out retries while Redis is down; the
  token manager tries the store again a second later anyway. Explicit, because redis-py's
  defaults differ by constructor (in 8.1: ``Redis(host=...)`` and ``RedisCluster`` retry 10
  times, with backoff for ``Redis``; ``Redis.from_url`` not at all). A timeout is not retried
  (what ``retry_on_timeout=False`` meant before redis-py 6 deprecated it; a ``Retry`` retries
  timeouts too unless told otherwise). The retry is also the rediscovery: a Sentinel connection asks
  the sentinels for the master's address each time it connects, and the Cluster client
  reloads its slot map before retrying (it reads only the number of retries from the
  ``Retry``, and retries its own set of errors). ``MOVED``/``ASK`` redirects are followed
  within one attempt.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ..config import RedisConfig

__all__ = ["RedisClient", "create_redis_client"]

#: What the token store and the refresh lock talk to; both kinds have the same commands.
RedisClient: TypeAlias = Redis | RedisCluster


def create_redis_client(config: RedisConfig) -> RedisClient:
    """The client for ``config``; connects lazily, on its first command."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": config.socket_timeout_s,
        "socket_connect_timeout": config.socket_timeout_s,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if config.cluster:
        return RedisCluster.from_url(config.url, **options)
    if config.sentinels:
        return _sentinel_master(config, options)
    return Redis.from_url(config.url, **options)


class _SentinelMaster(Redis):
    """The master's client, which also closes the connections to the sentinels.

    (``Sentinel.master_for`` leaves closing the ``Sentinel`` to the caller; the store closes
    only the client it was given.)
    """

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinel_manager is not None:
                await self.sentinel_manager.aclose()


def _sentinel_master(config: RedisConfig, options: dict[str, Any]) -> Redis:
    # The URL's credentials, database and query options are the master's; its host and port
    # are not used. parse_url raises ValueError for a scheme it does not know.
    from_url: dict[str, Any] = dict(parse_url(config.url))
    from_url.pop("host", None)
    from_url.pop("port", None)
    tls = from_url.pop("connection_class", None) is SSLConnection
    sentinel_options: dict[str, Any] = {
        key: options[key] for key in ("socket_timeout", "socket_connect_timeout", "retry")
    }
    if config.sentinel_password:
        sentinel_options["password"] = config.sentinel_password
    if tls:
        sentinel_options["ssl"] = True
        sentinel_options.update({k: v for k, v in from_url.items() if k.startswith("ssl_")})
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves __init__ untyped
        list(config.sentinels), sentinel_kwargs=sentinel_options
    )
    # As in redis-py's from_url, options in the URL's query win over the ones given here.
    client: _SentinelMaster = sentinel.master_for(
        config.sentinel_master, redis_class=_SentinelMaster, **{**options, "ssl": tls, **from_url}
    )
    client.sentinel_manager = sentinel
    return client
