"""The refresh lock: at most one refresh in flight across every replica.

In Redis it is redis-py's :class:`redis.asyncio.lock.Lock`: ``SET key token NX PX ttl`` to take
it, a compare-and-delete script to release it (so a holder whose lock expired cannot release
someone else's), and a compare-and-extend script for the keep-alive. The token names the
holder (``replica-id:random``), which makes "who holds the lock?" answerable from ``redis-cli``.

A lock with a TTL is only a lease: a holder frozen for longer than the TTL loses it without
knowing. The refresher therefore never relies on the lock alone; the write of the new pair is
fenced by the pair's version (see ``store.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from .errors import TokenStoreError

__all__ = ["MemoryRefreshLock", "RedisRefreshLock", "RefreshLock"]


class RefreshLock(Protocol):
    ttl_s: float

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""

    async def extend(self) -> bool:
        """Reset the TTL to ``ttl_s``; False when the lock is no longer ours."""

    async def release(self) -> None:
        """Give the lock back if it is still ours; never raises for a lost lock."""


class RedisRefreshLock:
    def __init__(
        self, client: aioredis.Redis | RedisCluster, key: str, *, ttl_s: float, owner: str
    ) -> None:
        self.ttl_s = ttl_s
        self.key = key
        self._owner = owner
        self._lock = Lock(client, key, timeout=ttl_s, blocking=False, thread_local=False)

    async def try_acquire(self) -> bool:
        token = f"{self._owner}:{uuid.uuid4().hex}"
        try:
            return bool(await self._lock.acquire(blocking=False, token=token))
        except (RedisError, OSError) as exc:
            raise TokenStoreError(f"Redis: {type(exc).__name__}") from None

    async def extend(self) -> bool:
        try:
            await self._lock.extend(self.ttl_s, replace_ttl=True)
        except LockError:
            return False
        except (RedisError, OSError) as exc:
            raise TokenStoreError(f"Redis: {type(exc).__name__}") from None
        return True

    async def release(self) -> None:
        try:
            await self._lock.release()
        except LockError:
            pass  # Expired, and perhaps taken by another replica since: not ours to delete.
        except (RedisError, OSError):
            pass  # The TTL will free it.


class MemoryRefreshLock:
    """The same contract inside one process (the ``demo`` store); TTL is not needed there."""

    def __init__(self, lock: asyncio.Lock, *, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = lock
        self._held = False

    async def try_acquire(self) -> bool:
        if self._lock.locked():
            return False
        await self._lock.acquire()
        self._held = True
        return True

    async def extend(self) -> bool:
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
