"""Renewing the token pair: exactly one refresh, however many requests and replicas ask.

PandaDoc's refresh tokens may be single-use: refreshing twice with one refresh token makes the
second call fail with ``invalid_grant``, and if the pair from the first call is then lost, a
person has to re-authorize in a browser. Everything here exists to make that impossible.

Two replicas, A and B, each get a 401 for pair version 7 at the same moment::

    t=0    A: 401 with v7.  Re-reads the store: v7. Takes the lock (SET NX PX).
    t=0    B: 401 with v7.  Re-reads the store: v7. The lock is taken: waits, polling.
    t=0.1  A: re-reads under the lock: still v7, so nobody refreshed meanwhile.
              Sends refresh_token(v7) to PandaDoc; a keep-alive extends the lock meanwhile.
    t=0.6  A: gets pair v8; stores it only if the store still holds v7 (compare-and-set).
              Releases the lock; replays its request with v8.
    t=0.62 B: its poll sees v8 in the store: replays with v8. It never calls the token endpoint.

A request that got a 401 for v7 while the store already has v8 (its replica's cached copy was
stale) replays with v8 and refreshes nothing: only a rejection of the *stored* pair leads to a
refresh. Inside one process, every request rejected with v7 shares a single renewal task.

Why the lock is not enough, and what covers the rest:

- A holder can freeze (GC pause, VM migration, SIGSTOP) past the lock's TTL. The TTL defaults
  to 60 s and a keep-alive resets it while the refresh runs, so a freeze shorter than that is
  harmless. After a longer one, another replica may refresh too; the version check on the
  write keeps the frozen holder from overwriting the newer pair.
- A refresh whose answer was lost (timeout, reset) has an unknown outcome: PandaDoc may have
  consumed the refresh token. Retrying with the same token is safe (it works, or says
  ``invalid_grant``), and ``invalid_grant`` counts as "authorization lost" only once a re-read
  shows no newer pair and we still hold the lock, i.e. no other refresh can be in flight.
- The token endpoint's read timeout is aiohttp's ``sock_read`` (an idle timer that arriving
  data resets), not an overall deadline: after a freeze, an answer already waiting in the
  socket is read before the timer can fire, so a frozen holder does not throw away the pair
  PandaDoc already sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import aiohttp

from ..config import OAuthConfig, TokensConfig
from ..errors import AuthorizationRequired, RefreshFailed, TokenStoreUnavailable
from .errors import StaleWrite, TokenStoreError
from .lock import RefreshLock
from .model import NewTokens, StoredPair
from .oauth import TokenEndpointError, refresh_tokens
from .store import TokenStore

__all__ = ["Refresher", "Trigger"]

#: What asked for a renewal: PandaDoc rejecting a token, the approaching expiry, an operator.
Trigger = Literal["rejected", "proactive", "manual"]

log = logging.getLogger("pandadoc_proxy.refresh")

T = TypeVar("T")

#: How often a replica waiting for another's refresh looks at the store again.
_POLL_S = 0.02


class Refresher:
    def __init__(
        self,
        store: TokenStore,
        session: aiohttp.ClientSession,
        oauth: OAuthConfig,
        settings: TokensConfig,
        *,
        owner: str,
        on_outcome: Callable[[str, Trigger], None] = lambda outcome, trigger: None,
        on_lock_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._store = store
        self._session = session
        self._oauth = oauth
        self._settings = settings
        self._owner = owner
        self._on_outcome = on_outcome
        self._on_lock_wait = on_lock_wait
        self._inflight: dict[int, asyncio.Task[StoredPair]] = {}
        self._cooldown_until = 0.0

    async def renew(self, rejected: StoredPair, *, trigger: Trigger) -> StoredPair:
        """A pair to use instead of ``rejected``: a newer stored one, or a fresh refresh.

        Raises :class:`AuthorizationRequired` when the authorization is gone for good and
        :class:`RefreshFailed` when the token endpoint is failing (the stored pair is kept).
        """
        task = self._inflight.get(rejected.version)
        if task is None:
            task = asyncio.ensure_future(self._renew(rejected, trigger))
            self._inflight[rejected.version] = task
            task.add_done_callback(lambda done: self._forget(rejected.version, done))
        # Shielded: a client that disconnects must not cancel the refresh that every other
        # waiting request (and replica) depends on, least of all between the token endpoint's
        # answer and the write of the new pair.
        return await asyncio.shield(task)

    def _forget(self, version: int, task: asyncio.Task[StoredPair]) -> None:
        if self._inflight.get(version) is task:
            del self._inflight[version]
        if not task.cancelled():
            task.exception()  # Retrieved here, in case every waiter has gone away.

    def seconds_until_due(self, pair: StoredPair, now: float | None = None) -> float | None:
        """Seconds until ``pair`` should be refreshed ahead of its expiry; None if never.

        The margin is ``tokens.refresh_margin_s``, but at most half the token's lifetime (a
        token that lives 3 s is refreshed after about 1.5 s, not at once). Each replica adds
        its own jitter of up to a fifth of the margin, stable for a given pair, so replicas do
        not all wake at the same instant; the lock decides who refreshes anyway.
        """
        if pair.expires_at is None or not pair.usable:
            return None
        now = time.time() if now is None else now
        lifetime = max(pair.expires_at - pair.obtained_at, 0.0)
        margin = min(self._settings.refresh_margin_s, lifetime / 2)
        jitter = random.Random(f"{self._owner}:{pair.version}").uniform(0, margin / 5)
        return pair.expires_at - margin - jitter - now

    async def _renew(self, rejected: StoredPair, trigger: Trigger) -> StoredPair:
        if time.monotonic() < self._cooldown_until:
            raise RefreshFailed("The last refresh failed moments ago; try again shortly.")
        lock = self._store.refresh_lock(self._owner, self._settings.lock_ttl_s)
        waiting_since = time.monotonic()
        current = await self._wait_for_lock_or_newer(rejected, lock)
        self._on_lock_wait(time.monotonic() - waiting_since)
        if current is not rejected:  # Someone else's newer pair; we never took the lock.
            return current
        keepalive = asyncio.ensure_future(self._keep_alive(lock))
        try:
            return await self._refresh_under_lock(rejected, lock, trigger)
        finally:
            keepalive.cancel()
            await asyncio.shield(lock.release())

    async def _wait_for_lock_or_newer(self, rejected: StoredPair, lock: RefreshLock) -> StoredPair:
        """Return a newer stored pair, or ``rejected`` itself once we hold the lock."""
        # Long enough for a holder that died to lose the lock, and for the next one to finish.
        give_up = time.monotonic() + 2 * self._settings.lock_ttl_s + self._oauth.token_timeout_s
        started = time.monotonic()
        while True:
            current = await self._load()
            if current is not None and current.is_older_than(rejected):
                # Redis failed over to a replica that had not seen the last write: the pair
                # we hold is the newer one (and its refresh token the one still valid).
                await _store_call(self._store.restore(rejected))
                continue
            newer = self._newer(current, rejected)
            if newer is not None:
                return newer
            if self._restored_recently(current) and time.monotonic() <= give_up:
                # Redis came back empty: the lock was lost with the data, so a refresh may be
                # in flight elsewhere unseen. Wait as for a lock held by an unknown holder.
                await asyncio.sleep(_POLL_S * 5)
                continue
            if await _store_call(lock.try_acquire()):
                log.debug(
                    "refresh lock taken",
                    extra={"event": "lock_acquired", "waited_s": time.monotonic() - started},
                )
                return rejected
            if time.monotonic() > give_up:
                raise RefreshFailed("Timed out waiting for another replica's refresh.")
            await asyncio.sleep(_POLL_S)

    def _restored_recently(self, pair: StoredPair | None) -> bool:
        return (
            pair is not None
            and pair.restored_at is not None
            and time.time() < pair.restored_at + self._settings.lock_ttl_s
        )

    async def _refresh_under_lock(
        self, rejected: StoredPair, lock: RefreshLock, trigger: Trigger
    ) -> StoredPair:
        # Someone may have refreshed between our last look and taking the lock.
        current = await self._load()
        newer = self._newer(current, rejected)
        if newer is not None:
            return newer
        assert current is not None  # _newer raised otherwise
        log.info("refreshing the token", extra={"event": "refresh_start", "trigger": trigger})
        try:
            tokens = await self._call_token_endpoint(current.refresh_token)
        except TokenEndpointError as exc:
            return await self._after_rejection(current, lock, exc, trigger)
        try:
            stored = await _store_call(
                self._store.save(
                    tokens,
                    expected_version=current.version,
                    obtained_by=self._owner,
                    lineage=current.lineage,
                )
            )
        except StaleWrite:
            # Only possible if our lock lapsed (a freeze longer than its TTL) and another
            # replica stored a pair meanwhile: theirs stays, ours is discarded.
            log.error(
                "a newer pair was stored during our refresh; keeping it",
                extra={"event": "refresh_fenced"},
            )
            self._on_outcome("fenced", trigger)
            stored_now = await self._load()
            if stored_now is None or not stored_now.usable:
                raise AuthorizationRequired() from None
            return stored_now
        log.info(
            "token refreshed",
            extra={"event": "refresh_ok", "version": stored.version, "trigger": trigger},
        )
        self._on_outcome("ok", trigger)
        return stored

    async def _after_rejection(
        self, current: StoredPair, lock: RefreshLock, exc: TokenEndpointError, trigger: Trigger
    ) -> StoredPair:
        if exc.error != "invalid_grant":
            self._cooldown_until = time.monotonic() + self._settings.failed_refresh_cooldown_s
            with contextlib.suppress(TokenStoreError):
                await self._store.record_refresh_failure(current.version, exc.error)
            level = logging.WARNING if exc.retryable else logging.ERROR
            log.log(
                level,
                "token refresh failed",
                extra={"event": "refresh_failed", "error": exc.error, "detail": exc.description},
            )
            self._on_outcome("failed", trigger)
            raise RefreshFailed() from None
        # invalid_grant: lost for good, unless another pair arrived, or our lock lapsed and
        # another refresh may be in flight elsewhere.
        newer = self._newer(await self._load(), current)
        if newer is not None:
            return newer
        if not await _store_call(lock.extend()):
            self._on_outcome("failed", trigger)
            raise RefreshFailed("The refresh lock lapsed during the refresh; try again.")
        await _store_call(
            self._store.mark_authorization_lost(
                current.version, f"refresh token rejected ({exc.error})"
            )
        )
        log.error(
            "PandaDoc rejected the refresh token; the proxy must be connected again",
            extra={"event": "authorization_lost", "error": exc.error},
        )
        self._on_outcome("rejected", trigger)
        raise AuthorizationRequired(
            "PandaDoc rejected the stored refresh token: an operator must connect the proxy again."
        )

    async def _call_token_endpoint(self, refresh_token: str) -> NewTokens:
        attempts = max(1, self._settings.refresh_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await refresh_tokens(self._session, self._oauth, refresh_token)
            except TokenEndpointError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                delay = self._settings.refresh_backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "token endpoint unavailable; retrying",
                    extra={"event": "refresh_retry", "attempt": attempt, "detail": exc.description},
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _keep_alive(self, lock: RefreshLock) -> None:
        """Reset the lock's TTL every third of it, for as long as the refresh runs."""
        while True:
            await asyncio.sleep(lock.ttl_s / 3)
            try:
                if not await lock.extend():
                    log.error("the refresh lock was lost", extra={"event": "lock_lost"})
                    return
            except TokenStoreError:
                log.warning("could not extend the refresh lock", extra={"event": "redis_error"})

    async def _load(self) -> StoredPair | None:
        return await _store_call(self._store.load())

    @staticmethod
    def _newer(current: StoredPair | None, rejected: StoredPair) -> StoredPair | None:
        """The stored pair if it replaces ``rejected``; None if ``rejected`` is still current."""
        if current is None or not current.usable:
            raise AuthorizationRequired()
        return current if current.version != rejected.version else None


async def _store_call(call: Awaitable[T]) -> T:
    """Await a store operation; an unreachable store becomes the contract's 503."""
    try:
        return await call
    except TokenStoreError:
        raise TokenStoreUnavailable(
            "The token store (Redis) is unreachable, so the token cannot be renewed."
        ) from None
