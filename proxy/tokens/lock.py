"""The refresh lock: at most one refresh in flight across every replica.

In Redis it is redis-py's :class:`redis.asyncio.lock.Lock`: ``SET key token NX PX ttl`` to take
it, a compare-and-delete script to release it (so a holder whose lock expired cannot release
someone else's), and a compare-and-extend script for the keep-alive.

The token names the holder: ``OWNER|HOST|NAMESPACE|PID|NONCE``, where OWNER is the replica id
(or ``cli``) and NAMESPACE names the kernel boot and PID namespace the holder runs in. That
makes "who holds the lock?" answerable from ``redis-cli``, and it lets a waiter recognise a
holder that provably died: one in its own PID namespace (a worker of the same ``serve``, or a
process of the same host or container) whose PID no longer exists, or whose PID is now the
waiter's own. Such a lock is taken over at once instead of after its TTL. A holder in another
namespace (another machine, a container that restarted) cannot be proven dead from here and
holds the lock until its TTL runs out.

A lock with a TTL is only a lease: a holder frozen for longer than the TTL loses it without
knowing. The refresher therefore never relies on the lock alone; the write of the new pair is
fenced by the pair's version (see ``store.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from .errors import RedisErrors

__all__ = ["MemoryRefreshLock", "RedisRefreshLock", "RefreshLock", "holder_is_dead", "lock_token"]


class RefreshLock(Protocol):
    ttl_s: float

    async def try_acquire(self) -> bool:
        """Take the lock if it is free, or held by a process that provably died; never waits."""

    async def extend(self) -> bool:
        """Reset the TTL to ``ttl_s``; False when the lock is no longer ours."""

    async def release(self) -> None:
        """Give the lock back if it is still ours. Raises ``TokenStoreError`` when Redis does
        not answer (the caller retries); never raises for a lock that is no longer ours."""


def _namespace() -> str:
    """This process's kernel boot and PID namespace: PIDs compare only within one."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pid_namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""  # Not Linux: no holder is ever proven dead, the TTL decides.
    return f"{boot}.{pid_namespace}"


_HOST = socket.gethostname()
_NAMESPACE = _namespace()
#: The lock tokens this process holds right now.
_held_here: set[str] = set()


def lock_token(owner: str, pid: int | None = None) -> str:
    """The lock's value for a holder: ``OWNER|HOST|NAMESPACE|PID|NONCE`` (see above)."""
    pid = os.getpid() if pid is None else pid
    return f"{owner}|{_HOST}|{_NAMESPACE}|{pid}|{uuid.uuid4().hex}"


def holder_is_dead(token: str) -> bool:
    """Whether the process that took the lock with ``token`` provably no longer runs."""
    parts = token.split("|")
    if len(parts) != 5 or not _NAMESPACE:
        return False
    _, host, namespace, pid_text, _ = parts
    if host != _HOST or namespace != _NAMESPACE or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        # Our own PID: either a lock this process holds, or one taken by an earlier process
        # that had this PID and is gone (we could not have its PID otherwise).
        return token not in _held_here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # Alive, under another user.
    return False


def _encoded(token: bytes | str) -> bytes:
    return token.encode() if isinstance(token, str) else token


class RedisRefreshLock:
    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        key: str,
        *,
        ttl_s: float,
        owner: str,
        errors: RedisErrors | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.key = key
        self._client = client
        self._owner = owner
        self._errors = errors or RedisErrors()
        self._lock = Lock(client, key, timeout=ttl_s, blocking=False, thread_local=False)
        self._token: str | None = None

    async def try_acquire(self) -> bool:
        token = lock_token(self._owner)
        with self._errors:
            if await self._lock.acquire(blocking=False, token=token):
                self._hold(token)
                return True
            holder = await self._client.get(self.key)
            if not holder or not holder_is_dead(str(holder)):
                return False
            try:
                # Compare-and-delete: a lock taken meanwhile by a live replica is left alone.
                await self._lock.do_release(_encoded(holder))
            except LockError:
                return False
            if await self._lock.acquire(blocking=False, token=token):
                self._hold(token)
                return True
        return False

    def _hold(self, token: str) -> None:
        self._token = token
        _held_here.add(token)

    async def extend(self) -> bool:
        try:
            with self._errors:
                await self._lock.extend(self.ttl_s, replace_ttl=True)
        except LockError:
            return False
        return True

    async def release(self) -> None:
        token = self._token
        if token is None:
            return
        try:
            with self._errors:
                # Compare-and-delete with our own token (redis-py's release script), callable
                # again after a failed attempt whatever redis-py's own bookkeeping did.
                await self._lock.do_release(token.encode())
        except LockError:
            pass  # Expired, and perhaps taken by another replica since: not ours to delete.
        _held_here.discard(token)
        self._token = None


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
