"""The shared token store: one versioned pair per deployment, and notices of every change.

Every replica pointed at the same Redis and ``redis.key_prefix`` reads and writes one hash,
``{prefix}:token``. (The braces are a Redis Cluster hash tag: every key of one deployment lands
in the same slot, so scripts may touch several of them.)

Writes are compare-and-set on the pair's ``version`` in one Lua script: a writer says which
version it started from, and the write happens only if that is still the stored one. This is
the fence that keeps a replica whose refresh lock has expired from overwriting a newer pair
with an older one. A write also names itself (``write_id``): retried after its answer was lost
(a timeout during a Redis pause), it finds itself already stored and succeeds, instead of
taking its own pair for a rival's.

Every script that changes the pair publishes a notice on ``{prefix}:notices`` in the same
step, so no write can land without its notice, whoever wrote it (a replica, the command line).
Plain pub/sub, not sharded: notices are rare (one per refresh), so a Cluster broadcasting them
to every node costs nothing worth saving, every node hears them (a subscriber may connect to
any), and no client-side slot tracking is needed across failovers. :meth:`notices` is the
subscriber's side; the token manager re-reads the pair on each notice.

:class:`MemoryTokenStore` has the same semantics for the ``demo`` command, which runs without
Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Final, Protocol, cast

from redis.asyncio.client import PubSub

from ..config import Config
from .cipher import SCHEME, PairCipher
from .errors import RedisErrors, StaleWrite, TokenStoreError, raise_if_cancelled
from .lock import MemoryRefreshLock, RedisRefreshLock, RefreshLock
from .model import NewTokens, StoredPair
from .redis_client import RedisClient, create_redis_client

__all__ = [
    "SUBSCRIBED",
    "MemoryTokenStore",
    "RedisTokenStore",
    "StaleWrite",
    "TokenStore",
    "TokenStoreError",
    "new_write_id",
    "restore_if_lost",
]

log = logging.getLogger("pandadoc_proxy.tokens")

#: What :meth:`TokenStore.notices` yields first, once it listens: notices sent before that
#: moment were missed, so the listener re-reads the pair once.
SUBSCRIBED: Final = "subscribed"

#: How many refresh moments a pair carries for the refresh ceiling (more than any ceiling
#: worth configuring: a ceiling above it counts only this many).
_REFRESH_HISTORY = 32


class TokenStore(Protocol):
    async def load(self) -> StoredPair | None:
        """The stored pair, or None when none was ever stored."""

    async def save(
        self,
        tokens: NewTokens,
        *,
        expected_version: int | None,
        obtained_by: str,
        lineage: str | None = None,
        write_id: str | None = None,
        refreshed_at: tuple[float, ...] = (),
        obtained_at: float | None = None,
    ) -> StoredPair:
        """Store a new pair as version ``current + 1``.

        ``lineage`` names the authorization the pair descends from: a refresh passes its
        parent's, anything else (a connect, ``token set``) starts a new one. ``refreshed_at``
        is the refresh history the pair carries (a refresh passes its parent's, plus now).
        ``obtained_at`` is when the token endpoint issued the pair (default: now); the access
        token's expiry counts from then, however long the write took.

        With ``expected_version`` (0 meaning "nothing stored yet") the write is fenced and raises
        :class:`StaleWrite` when the stored version differs. ``None`` writes unconditionally.
        A write retried with the same ``write_id`` after its first attempt landed succeeds
        and returns the pair as stored.
        """

    async def mark_authorization_lost(self, version: int, reason: str) -> bool:
        """Record that pair ``version`` was rejected for good, if it is still the stored one.

        Fenced like ``save``: a newer pair stored meanwhile is never marked. Every replica then
        answers 503 ``authorization_required`` without calling the token endpoint, until a
        new pair is stored (which clears the mark).
        """

    async def record_refresh_failure(self, version: int, error: str) -> None:
        """Note on pair ``version`` (if still stored) that refreshing it just failed; the next
        stored pair starts clean. Shown on the status page of every replica."""

    def refresh_lock(self, owner: str, ttl_s: float) -> RefreshLock:
        """The lock that serializes refreshes of this store's pair."""

    async def put_oauth_state(self, state: str, binding: str, ttl_s: int) -> None:
        """Remember an OAuth ``state`` issued to one browser (``binding``) for ``ttl_s``."""

    async def take_oauth_state(self, state: str) -> str | None:
        """The binding of ``state``, forgetting it in the same step: a state works once."""

    async def restore(self, pair: StoredPair) -> bool:
        """Write back a pair this process holds, after the store came back empty.

        Redis restarted without persistence loses the pair, while the replicas still hold it:
        writing it back (with its own version) spares a re-authorization. Fenced: only into an
        empty store, or over a restore of an older version by another replica; never over a
        pair stored in the ordinary way (by a refresh, a connect or an operator).
        """

    def notices(self) -> AsyncIterator[str]:
        """Listen for changes of the pair, made by anyone: yields :data:`SUBSCRIBED` once
        listening, then one notice per change, ``KIND VERSION`` (``stored 8``, ``annotated
        8``, ``restored 8``, and the refresher's own ``renewing 7`` / ``settled 7``). Raises
        :class:`TokenStoreError` when the subscription breaks (the caller subscribes again)."""

    async def announce(self, kind: str, version: int) -> None:
        """Publish the notice ``KIND VERSION`` to every listener (see :meth:`notices`)."""

    async def ping(self) -> None:
        """Raise :class:`TokenStoreError` unless the store answers."""

    async def close(self) -> None: ...


async def restore_if_lost(
    store: TokenStore, held: StoredPair, stored: StoredPair | None
) -> StoredPair | None:
    """What the store holds, after writing ``held`` back if the store lost it.

    The store lost a pair a process holds when it shows nothing (Redis restarted without
    persistence) or an ancestor of it (a failover to a replica that had not seen the last
    write): writing the held pair back (see :meth:`TokenStore.restore`) spares a person a new
    authorization, and keeps a refresh from starting from a rolled-back refresh token. The one
    policy for that, used by the token manager's reads and by the refresher's.
    """
    if not held.usable or (stored is not None and not stored.is_older_than(held)):
        return stored
    if await store.restore(held):
        log.warning(
            "the token store lost the current pair; wrote back the one this replica holds",
            extra={"event": "token_restored", "version": held.version},
        )
    return await store.load()


def new_lineage() -> str:
    return secrets.token_hex(8)


def new_write_id() -> str:
    return secrets.token_hex(8)


def _pair_fields(
    tokens: NewTokens,
    obtained_by: str,
    now: float,
    lineage: str,
    write_id: str,
    refreshed_at: tuple[float, ...],
    cipher: PairCipher | None = None,
) -> dict[str, str]:
    expires_at = "" if tokens.expires_in is None else repr(now + tokens.expires_in)
    return {
        **_token_fields(tokens.access_token, tokens.refresh_token, cipher),
        "expires_at": expires_at,
        "obtained_at": repr(now),
        "obtained_by": obtained_by,
        "lineage": lineage,
        "write_id": write_id,
        "refreshed_at": ",".join(repr(moment) for moment in refreshed_at[-_REFRESH_HISTORY:]),
    }


def _token_fields(access: str, refresh: str, cipher: PairCipher | None) -> dict[str, str]:
    if cipher is None:
        return {"access_token": access, "refresh_token": refresh}
    return {
        "access_token": cipher.encrypt(access),
        "refresh_token": cipher.encrypt(refresh),
        "cipher": SCHEME,
    }


def _pair_from_fields(fields: dict[str, str], cipher: PairCipher | None = None) -> StoredPair:
    try:
        access, refresh = fields["access_token"], fields["refresh_token"]
        if fields.get("cipher"):
            if cipher is None:
                raise TokenStoreError(
                    "the stored token pair is encrypted, but tokens.encryption_keys is not set"
                )
            access, refresh = cipher.decrypt(access), cipher.decrypt(refresh)
        history = fields.get("refreshed_at", "")
        return StoredPair(
            access_token=access,
            refresh_token=refresh,
            expires_at=_optional_float(fields, "expires_at"),
            version=int(fields["version"]),
            obtained_at=float(fields["obtained_at"]),
            obtained_by=fields.get("obtained_by", ""),
            lineage=fields.get("lineage", ""),
            write_id=fields.get("write_id", ""),
            refreshed_at=tuple(float(moment) for moment in history.split(",") if moment),
            authorization_lost=fields.get("authorization_lost") or None,
            refresh_error=fields.get("refresh_error") or None,
            refresh_failed_at=_optional_float(fields, "refresh_failed_at"),
            restored_at=_optional_float(fields, "restored_at"),
        )
    except (KeyError, ValueError) as exc:
        # Name the field, never its value: the value may be a token.
        raise TokenStoreError(
            f"the stored token pair is malformed ({type(exc).__name__})"
        ) from None


def _optional_float(fields: dict[str, str], name: str) -> float | None:
    """A stored moment; None when absent, or not finite (written by an older version from a
    token endpoint's ``expires_in`` of infinity: no JSON body or date can show it)."""
    if not fields.get(name):
        return None
    value = float(fields[name])
    return value if math.isfinite(value) else None


def _flat(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


# KEYS[1]: the pair hash. ARGV[1]: expected version, or -1 for an unconditional write.
# ARGV[2]: the writer's lineage. ARGV[3]: the write's id. ARGV[4]: the notice channel.
# ARGV[5..]: field, value, field, value, ...
# Returns {1, new_version} or {0, current_version}. DEL + HSET replaces the whole pair, so no
# field of an older pair survives (an old expires_at, say).
#
# The write also goes through when the stored pair is not the expected one but cannot be newer
# than the writer's, because Redis lost data while the writer was refreshing: the store is
# empty, or holds a pair written back after a restart (restored = 1), or an older pair of the
# writer's own lineage (a Sentinel failover to a replica that had not seen the last write).
_SAVE_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'write_id') == ARGV[3] then
  return {1, current}
end
local expected = tonumber(ARGV[1])
local older = current <= expected
local lost_meanwhile = current == 0 or
  (older and redis.call('HGET', KEYS[1], 'restored') == '1') or
  (older and redis.call('HGET', KEYS[1], 'lineage') == ARGV[2])
if expected >= 0 and current ~= expected and not lost_meanwhile then
  return {0, current}
end
local new_version = math.max(current, expected) + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', new_version, unpack(ARGV, 5))
redis.call('PUBLISH', ARGV[4], 'stored ' .. new_version)
return {1, new_version}
"""


# Sets fields on the pair only if it is still the given version (a note about an older pair
# must not land on a newer one). KEYS[1]: the pair hash. ARGV[1]: the version.
# ARGV[2]: the notice channel. ARGV[3..]: field, value, ...
_ANNOTATE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PUBLISH', ARGV[2], 'annotated ' .. ARGV[1])
return 1
"""


# KEYS[1]: the pair hash. ARGV[1]: the version to restore. ARGV[2]: its lineage.
# ARGV[3]: the notice channel. ARGV[4..]: field, value, ... Replaces an older restore, or an
# older pair of the same lineage.
_RESTORE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'version')
if current then
  local replaceable = redis.call('HGET', KEYS[1], 'restored') == '1' or
    redis.call('HGET', KEYS[1], 'lineage') == ARGV[2]
  if not replaceable or tonumber(current) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'restored', '1', unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[3], 'restored ' .. ARGV[1])
return 1
"""
# (restored_at, written with the pair, is the server's clock: replicas compare it with theirs
# only to within the lock's TTL, which dwarfs any clock skew worth worrying about.)


def _restored_fields(pair: StoredPair, cipher: PairCipher | None) -> dict[str, str]:
    return {
        **_token_fields(pair.access_token, pair.refresh_token, cipher),
        "expires_at": "" if pair.expires_at is None else repr(pair.expires_at),
        "obtained_at": repr(pair.obtained_at),
        "obtained_by": pair.obtained_by,
        "lineage": pair.lineage,
        "write_id": pair.write_id,
        "refreshed_at": ",".join(repr(moment) for moment in pair.refreshed_at),
        "restored_at": repr(time.time()),
    }


#: A notice subscription that has heard nothing (not even the answer to its own PING) for
#: this long is taken for dead: a Redis frozen by SIGSTOP or behind a silent network
#: partition keeps the TCP connection open but answers nothing.
_NOTICE_PING_AFTER_S = 1.0
_NOTICE_DEAD_AFTER_S = 3.0


async def _close_quietly(pubsub: PubSub) -> None:
    # Closing a broken connection may fail too; it is gone either way.
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


class RedisTokenStore:
    """The pair in a Redis hash, shared by every replica using the same prefix."""

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        cipher: PairCipher | None = None,
        *,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = client
        self._cipher = cipher
        self._errors = RedisErrors(on_error)
        tag = "{" + key_prefix + "}"
        self.pair_key = f"{tag}:token"
        self.lock_key = f"{tag}:refresh-lock"
        self.notice_channel = f"{tag}:notices"
        self._save = client.register_script(_SAVE_SCRIPT)
        self._annotate = client.register_script(_ANNOTATE_SCRIPT)
        self._restore = client.register_script(_RESTORE_SCRIPT)
        self._state_prefix = f"{tag}:oauth-state:"

    @classmethod
    def from_config(
        cls, config: Config, *, on_error: Callable[[], None] = lambda: None
    ) -> RedisTokenStore:
        """The store as ``config`` describes it: its Redis, key prefix and encryption keys."""
        keys = config.tokens.encryption_keys
        return cls(
            create_redis_client(config.redis),
            config.redis.key_prefix,
            cipher=PairCipher(keys) if keys else None,
            on_error=on_error,
        )

    @property
    def client(self) -> RedisClient:
        return self._redis

    async def load(self) -> StoredPair | None:
        with self._errors:
            # decode_responses=True: keys and values are str.
            fields = cast(dict[str, str], await self._redis.hgetall(self.pair_key))
        return _pair_from_fields(fields, self._cipher) if fields else None

    async def save(
        self,
        tokens: NewTokens,
        *,
        expected_version: int | None,
        obtained_by: str,
        lineage: str | None = None,
        write_id: str | None = None,
        refreshed_at: tuple[float, ...] = (),
        obtained_at: float | None = None,
    ) -> StoredPair:
        lineage = lineage or new_lineage()
        write_id = write_id or new_write_id()
        now = time.time() if obtained_at is None else obtained_at
        fields = _pair_fields(
            tokens, obtained_by, now, lineage, write_id, refreshed_at, self._cipher
        )
        expected = -1 if expected_version is None else expected_version
        with self._errors:
            ok, version = await self._save(
                keys=[self.pair_key],
                args=[expected, lineage, write_id, self.notice_channel, *_flat(fields)],
            )
        if not ok:
            raise StaleWrite(expected, int(version))
        return _pair_from_fields({**fields, "version": str(version)}, self._cipher)

    async def restore(self, pair: StoredPair) -> bool:
        fields = _restored_fields(pair, self._cipher)
        with self._errors:
            done = await self._restore(
                keys=[self.pair_key],
                args=[pair.version, pair.lineage, self.notice_channel, *_flat(fields)],
            )
        return bool(done)

    async def mark_authorization_lost(self, version: int, reason: str) -> bool:
        return await self._annotate_pair(version, authorization_lost=reason)

    async def record_refresh_failure(self, version: int, error: str) -> None:
        await self._annotate_pair(version, refresh_error=error, refresh_failed_at=repr(time.time()))

    async def _annotate_pair(self, version: int, **fields: str) -> bool:
        with self._errors:
            done = await self._annotate(
                keys=[self.pair_key], args=[version, self.notice_channel, *_flat(fields)]
            )
        return bool(done)

    def refresh_lock(self, owner: str, ttl_s: float) -> RefreshLock:
        return RedisRefreshLock(
            self._redis, self.lock_key, ttl_s=ttl_s, owner=owner, errors=self._errors
        )

    async def put_oauth_state(self, state: str, binding: str, ttl_s: int) -> None:
        with self._errors:
            await self._redis.set(self._state_prefix + state, binding, ex=ttl_s, nx=True)

    async def take_oauth_state(self, state: str) -> str | None:
        with self._errors:
            binding = await self._redis.getdel(self._state_prefix + state)
        return cast(str | None, binding)

    async def announce(self, kind: str, version: int) -> None:
        with self._errors:
            await self._redis.publish(self.notice_channel, f"{kind} {version}")

    async def notices(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pubsub = self._redis.pubsub()
        try:
            with self._errors:
                await pubsub.subscribe(self.notice_channel)
            raise_if_cancelled()
            heard = loop.time()
            pinged = False
            while True:
                # One task owns the subscription's connection, reads and pings included:
                # closing it from another task would hand it back to the pool while this one
                # may still reconnect it, and two coroutines would then read one socket.
                with self._errors:
                    message = await pubsub.get_message(timeout=1.0)
                raise_if_cancelled()  # redis-py's timed reads can swallow a cancellation.
                now = loop.time()
                if message is None:
                    if now - heard > _NOTICE_DEAD_AFTER_S:
                        self._errors.on_error()
                        raise TokenStoreError("Redis: the notice subscription went silent")
                    if now - heard > _NOTICE_PING_AFTER_S and not pinged:
                        with self._errors:
                            await pubsub.ping()
                        pinged = True
                    continue
                # Anything at all (the answer to a PING included) proves the connection alive.
                heard, pinged = now, False
                if message["type"] == "subscribe":
                    # Also after redis-py reconnected and subscribed again on its own.
                    yield SUBSCRIBED
                elif message["type"] == "message":
                    yield str(message["data"])
        finally:
            await _close_quietly(pubsub)

    async def ping(self) -> None:
        with self._errors:
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryTokenStore:
    """The same contract as :class:`RedisTokenStore`, for one process (the ``demo`` command)."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._states: dict[str, tuple[str, float]] = {}
        self._listeners: set[asyncio.Queue[str]] = set()

    async def load(self) -> StoredPair | None:
        return _pair_from_fields(self._fields) if self._fields else None

    async def save(
        self,
        tokens: NewTokens,
        *,
        expected_version: int | None,
        obtained_by: str,
        lineage: str | None = None,
        write_id: str | None = None,
        refreshed_at: tuple[float, ...] = (),
        obtained_at: float | None = None,
    ) -> StoredPair:
        async with self._lock:
            current = int(self._fields.get("version", "0"))
            if write_id and self._fields.get("write_id") == write_id:
                return _pair_from_fields(self._fields)
            if expected_version is not None and current != expected_version:
                raise StaleWrite(expected_version, current)
            fields = _pair_fields(
                tokens,
                obtained_by,
                time.time() if obtained_at is None else obtained_at,
                lineage or new_lineage(),
                write_id or new_write_id(),
                refreshed_at,
            )
            self._fields = {**fields, "version": str(current + 1)}
            self._notify(f"stored {current + 1}")
            return _pair_from_fields(self._fields)

    async def mark_authorization_lost(self, version: int, reason: str) -> bool:
        return self._annotate_pair(version, authorization_lost=reason)

    async def restore(self, pair: StoredPair) -> bool:
        return False  # Nothing to come back empty: the memory store lives as long as we do.

    async def record_refresh_failure(self, version: int, error: str) -> None:
        self._annotate_pair(version, refresh_error=error, refresh_failed_at=repr(time.time()))

    def _annotate_pair(self, version: int, **fields: str) -> bool:
        if self._fields.get("version") != str(version):
            return False
        self._fields.update(fields)
        self._notify(f"annotated {version}")
        return True

    def _notify(self, notice: str) -> None:
        for queue in self._listeners:
            queue.put_nowait(notice)

    async def announce(self, kind: str, version: int) -> None:
        self._notify(f"{kind} {version}")

    def refresh_lock(self, owner: str, ttl_s: float) -> RefreshLock:
        return MemoryRefreshLock(self._refresh_lock, ttl_s=ttl_s)

    async def put_oauth_state(self, state: str, binding: str, ttl_s: int) -> None:
        now = time.monotonic()
        self._states = {k: v for k, v in self._states.items() if v[1] > now}
        self._states.setdefault(state, (binding, now + ttl_s))

    async def take_oauth_state(self, state: str) -> str | None:
        binding, expires = self._states.pop(state, ("", 0.0))
        return binding if expires > time.monotonic() else None

    async def notices(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            yield SUBSCRIBED
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
