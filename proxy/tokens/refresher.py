"""Renewing the token pair: exactly one refresh, however many requests and replicas ask.

PandaDoc's refresh tokens may be single-use: refreshing twice with one refresh token makes the
second call fail with ``invalid_grant``, and if the pair from the first call is then lost, a
person has to re-authorize in a browser. Everything here exists to make that impossible.

Two replicas, A and B, each get a 401 for pair version 7 at the same moment::

    t=0    A: 401 with v7.  Re-reads the store: v7. Takes the lock (SET NX PX).
    t=0    B: 401 with v7.  Re-reads the store: v7. The lock is taken: waits, polling.
    t=0.1  A: re-reads under the lock: still v7, so nobody refreshed meanwhile.
              Sends refresh_token(v7) to PandaDoc; a keep-alive extends the lock meanwhile.
    t=0.6  A: gets the new pair. From this moment it exists only in A's memory: A uses it at
              once (its waiting requests replay with it) and writes it as v8, fenced: only if
              the store still holds v7 (compare-and-set), retried until the write lands.
    t=0.61 A: the write lands; its notice reaches every replica. A releases the lock.
    t=0.62 B: the notice (or its poll) shows v8: it replays with v8, never calling PandaDoc.

Inside one process, every request rejected with v7 shares a single renewal.

What can go wrong, and what covers it:

- **Redis stops taking writes after PandaDoc answered** (``CLIENT PAUSE WRITE`` during a
  failover, a frozen Redis, a network cut). The new pair is the only copy of a single-use
  refresh token's successor, so it is never dropped: it is served from memory at once, and
  its write is retried with backoff, under the same version fence and with the same write id
  (a retry whose earlier attempt landed after all finds itself in the store), while the
  keep-alive holds the lock, until it lands or a newer pair appears. A release of the lock that
  fails is retried too. Should the process stop before the write lands, it says so loudly
  (``pair_write_abandoned``, ERROR, and a metric): that pair, and with a single-use refresh
  token the authorization, is lost, exactly as if the process had crashed in that window.
- **The process crashes between PandaDoc's answer and the write** (SIGKILL, OOM). Nothing here
  can save a pair that only existed in a dead process's memory. What the design guarantees:
  no other replica refreshes with the consumed refresh token before the crashed holder's lock
  expires (``tokens.lock_ttl_s``; at once if the holder provably died in the same PID namespace,
  see ``lock.py``); the next refresh then meets ``invalid_grant``, finds no newer pair, and
  every replica answers 503 ``authorization_required`` instead of calling PandaDoc again; the
  window is the time one Redis write takes (milliseconds), unless Redis also stops answering.
- **A holder freezes** (GC pause, VM migration, SIGSTOP) past the lock's TTL. The TTL defaults
  to 60 s and a keep-alive resets it while the refresh runs, so a freeze shorter than that is
  harmless. After a longer one, another replica may refresh too; the version fence keeps the
  frozen holder from overwriting the newer pair.
- **A refresh whose answer was lost** (timeout, reset) has an unknown outcome: PandaDoc may have
  consumed the refresh token. Retrying with the same token is safe (it works, or says
  ``invalid_grant``), and ``invalid_grant`` counts as "authorization lost" only once a re-read
  shows no newer pair and we still hold the lock, i.e. no other refresh can be in flight.
- **The token call's timeout** is ``freeze_tolerant_timeout`` (``oauth.py``): after a freeze, an
  answer already waiting in the socket is read before the deadline can throw it away.
- **A token endpoint that claims tokens live 0 s** (or that PandaDoc rejects at once) would
  have every replica refresh in a loop. Nonsensical lifetimes count as unknown (``model.py``),
  and a ceiling, ``tokens.max_refreshes_per_minute``, counted fleet-wide in the pair's own
  history under the lock, refuses further refreshes within the minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from ..config import OAuthConfig, TokensConfig
from ..errors import (
    AuthorizationRequired,
    RefreshCeilingReached,
    RefreshFailed,
    TokenStoreUnavailable,
)
from .errors import StaleWrite, TokenStoreError, raise_if_cancelled
from .events import NoTokenEvents, TokenEvents, Trigger
from .lock import RefreshLock
from .model import NewTokens, StoredPair
from .oauth import TokenEndpointError, refresh_tokens
from .store import TokenStore, new_write_id, restore_if_lost

__all__ = ["Refresher", "Trigger"]

log = logging.getLogger("pandadoc_proxy.refresh")

T = TypeVar("T")

#: How often a replica waiting for another's refresh looks at the store again.
_POLL_S = 0.02
#: Retrying a write (or a release) that Redis did not take: first wait, and the longest.
_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 2.0
#: Between announcing a proactive refresh and calling the token endpoint (see its use).
_QUIESCE_S = 0.1
#: While the store does not answer, how long to wait before looking again.
_STORE_RETRY_S = 0.25
#: The window of the refresh ceiling.
_CEILING_WINDOW_S = 60.0


class _Renewal:
    """One renewal in flight: the pair its waiters get as soon as it is known, and the task
    that goes on (writing the pair, releasing the lock) after they got it."""

    def __init__(self) -> None:
        self.pair: asyncio.Future[StoredPair] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    def resolve(self, pair: StoredPair) -> None:
        if not self.pair.done():
            self.pair.set_result(pair)

    def fail(self, error: BaseException) -> None:
        if not self.pair.done():
            self.pair.set_exception(error)


class Refresher:
    def __init__(
        self,
        store: TokenStore,
        session: aiohttp.ClientSession,
        oauth: OAuthConfig,
        settings: TokensConfig,
        *,
        owner: str,
        adopt: Callable[[StoredPair], None] = lambda pair: None,
        events: TokenEvents | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._oauth = oauth
        self._settings = settings
        self._owner = owner
        #: Called with every pair this refresher obtains or finds: the new pair the moment
        #: PandaDoc issued it (``uncommitted``), again once stored, or another replica's.
        self._adopt = adopt
        self._events = events or NoTokenEvents()
        self._inflight: dict[int, _Renewal] = {}
        self._cooldown_until = 0.0

    async def renew(self, rejected: StoredPair, *, trigger: Trigger) -> StoredPair:
        """A pair to use instead of ``rejected``: a newer stored one, or a fresh refresh.

        Returns as soon as such a pair is known, possibly before a new pair's write to the
        store has landed (:meth:`settled` waits for that too). Raises
        :class:`AuthorizationRequired` when the authorization is gone for good and
        :class:`RefreshFailed` when the token endpoint is failing (the stored pair is kept).
        """
        renewal = self._start(rejected, trigger)
        # Shielded: a client that disconnects must not cancel the renewal that every other
        # waiting request (and replica) depends on.
        return await asyncio.shield(renewal.pair)

    async def settled(self, rejected: StoredPair, *, trigger: Trigger) -> StoredPair:
        """Like :meth:`renew`, then also wait until the new pair is in the store (for the
        command line, which must not exit while the only copy is in its memory)."""
        renewal = self._start(rejected, trigger)
        pair = await asyncio.shield(renewal.pair)
        if renewal.task is not None:
            await asyncio.shield(renewal.task)
        return pair

    def _start(self, rejected: StoredPair, trigger: Trigger) -> _Renewal:
        renewal = self._inflight.get(rejected.version)
        if renewal is None:
            renewal = _Renewal()
            renewal.task = asyncio.ensure_future(self._run(renewal, rejected, trigger))
            self._inflight[rejected.version] = renewal
            renewal.task.add_done_callback(lambda _: self._forget(rejected.version, renewal))
        return renewal

    def _forget(self, version: int, renewal: _Renewal) -> None:
        if self._inflight.get(version) is renewal:
            del self._inflight[version]
        if not renewal.pair.done():
            renewal.fail(RefreshFailed("The renewal was stopped."))
        if not renewal.pair.cancelled():
            renewal.pair.exception()  # Retrieved here, in case every waiter has gone away.

    async def close(self, grace_s: float) -> None:
        """At shutdown: give renewals in flight (a pair being written) ``grace_s`` to finish,
        then stop them, saying loudly what that loses."""
        tasks = [r.task for r in self._inflight.values() if r.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

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

    async def _run(self, renewal: _Renewal, rejected: StoredPair, trigger: Trigger) -> None:
        try:
            await self._renew(renewal, rejected, trigger)
        except asyncio.CancelledError:
            renewal.fail(RefreshFailed("The proxy is shutting down."))
            raise
        except Exception as exc:
            renewal.fail(exc)  # Handed to every waiter, and raised there.

    async def _renew(self, renewal: _Renewal, rejected: StoredPair, trigger: Trigger) -> None:
        if time.monotonic() < self._cooldown_until:
            raise RefreshFailed("The last refresh failed moments ago; try again shortly.")
        lock = self._store.refresh_lock(self._owner, self._settings.lock_ttl_s)
        waiting_since = time.monotonic()
        current = await self._wait_for_lock_or_newer(rejected, lock)
        self._events.waited_for_lock(time.monotonic() - waiting_since)
        if current is not rejected:  # Someone else's newer pair; we never took the lock.
            renewal.resolve(current)
            return
        keepalive = asyncio.ensure_future(self._keep_alive(lock))
        stopping = False
        try:
            await self._refresh_under_lock(renewal, rejected, lock, trigger)
        except asyncio.CancelledError:
            stopping = True
            raise
        finally:
            keepalive.cancel()
            if stopping:
                # Shutting down: one attempt to free the lock for the other replicas.
                with contextlib.suppress(TokenStoreError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await lock.release()
            else:
                await self._release(lock)

    async def _wait_for_lock_or_newer(self, rejected: StoredPair, lock: RefreshLock) -> StoredPair:
        """Return a newer stored pair, or ``rejected`` itself once we hold the lock.

        A store that does not answer (Redis paused for a failover, restarting) is waited for
        like a busy lock, up to the same limit: the requests behind this renewal have their
        own, shorter limit (``tokens.renewal_wait_s``, see the manager).
        """
        # Long enough for a holder that died to lose the lock, and for the next one to finish.
        give_up = time.monotonic() + 2 * self._settings.lock_ttl_s + self._oauth.token_timeout_s
        started = time.monotonic()
        while True:
            pause = _POLL_S
            try:
                found = await self._lock_or_newer(rejected, lock)
            except TokenStoreError:
                raise_if_cancelled()
                if time.monotonic() > give_up:
                    raise TokenStoreUnavailable(
                        "The token store (Redis) is unreachable, so the token cannot be renewed."
                    ) from None
                found, pause = None, _STORE_RETRY_S
            if found is not None:
                log.debug(
                    "renewal can go on",
                    extra={"event": "lock_acquired", "waited_s": time.monotonic() - started},
                )
                return found
            if time.monotonic() > give_up:
                raise RefreshFailed("Timed out waiting for another replica's refresh.")
            await asyncio.sleep(pause)

    async def _lock_or_newer(self, rejected: StoredPair, lock: RefreshLock) -> StoredPair | None:
        """One look: a newer stored pair, ``rejected`` if we just took the lock, or None."""
        # Redis lost data (a restart, a failover to a replica that had not seen the last
        # write): the pair we hold is then the newer one, its refresh token the valid one.
        current = await restore_if_lost(self._store, rejected, await self._store.load())
        newer = self._newer(current, rejected)
        if newer is not None:
            return newer
        if self._restored_recently(current):
            # Redis came back empty: the lock was lost with the data, so a refresh may be
            # in flight elsewhere unseen. Wait as for a lock held by an unknown holder.
            return None
        return rejected if await lock.try_acquire() else None

    def _restored_recently(self, pair: StoredPair | None) -> bool:
        return (
            pair is not None
            and pair.restored_at is not None
            and time.time() < pair.restored_at + self._settings.lock_ttl_s
        )

    async def _refresh_under_lock(
        self, renewal: _Renewal, rejected: StoredPair, lock: RefreshLock, trigger: Trigger
    ) -> None:
        # Someone may have refreshed between our last look and taking the lock.
        current = await _store_call(self._store.load())
        newer = self._newer(current, rejected)
        if newer is not None:
            renewal.resolve(newer)
            return
        assert current is not None  # _newer raised otherwise
        self._check_ceiling(current, trigger)
        log.info("refreshing the token", extra={"event": "refresh_start", "trigger": trigger})
        await self._announce("renewing", current.version)
        if trigger != "rejected":
            # The token still works, but PandaDoc may revoke it the moment it issues the
            # next one: give requests sent with it just before every replica heard the
            # notice time to reach PandaDoc first, rather than a 401 there.
            await asyncio.sleep(_QUIESCE_S)
        try:
            tokens = await self._call_token_endpoint(current.refresh_token)
        except TokenEndpointError as exc:
            try:
                renewal.resolve(await self._after_rejection(current, lock, exc, trigger))
            finally:
                await self._announce("settled", current.version)
            return
        # From here until the write lands, the new pair exists only in this process.
        now = time.time()
        issued = StoredPair(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=None if tokens.expires_in is None else now + tokens.expires_in,
            version=current.version + 1,
            obtained_at=now,
            obtained_by=self._owner,
            lineage=current.lineage,
            write_id=new_write_id(),
            refreshed_at=(*current.refreshed_at, now),
            uncommitted=True,
        )
        self._adopt(issued)
        renewal.resolve(issued)
        stored = await self._commit(tokens, issued, current, trigger)
        self._adopt(stored)

    async def _announce(self, kind: str, version: int) -> None:
        """Tell every replica; best effort: one that misses it learns from the next notice,
        or from PandaDoc's 401."""
        with contextlib.suppress(TokenStoreError):
            await self._store.announce(kind, version)

    def _check_ceiling(self, current: StoredPair, trigger: Trigger) -> None:
        ceiling = self._settings.max_refreshes_per_minute
        now = time.time()
        if not ceiling or current.refreshes_since(now - _CEILING_WINDOW_S) < ceiling:
            return
        recent = sorted(m for m in current.refreshed_at if m > now - _CEILING_WINDOW_S)
        free_in = max(1, round(recent[-ceiling] + _CEILING_WINDOW_S - now))
        log.warning(
            "refresh refused: the ceiling of refreshes per minute is reached",
            extra={"event": "refresh_ceiling", "ceiling": ceiling, "trigger": trigger},
        )
        self._events.refreshed("ceiling", trigger)
        raise RefreshCeilingReached(
            f"The token was refreshed {ceiling} times in the last minute, the most "
            "tokens.max_refreshes_per_minute allows; PandaDoc's token endpoint is misbehaving. "
            "The proxy tries again shortly.",
            retry_after_s=free_in,
        )

    async def _commit(
        self, tokens: NewTokens, issued: StoredPair, parent: StoredPair, trigger: Trigger
    ) -> StoredPair:
        """Write ``issued`` as the successor of ``parent`` until it lands; never give up."""
        delay = _RETRY_FIRST_S
        pending_since: float | None = None
        try:
            while True:
                try:
                    stored = await self._store.save(
                        tokens,
                        expected_version=parent.version,
                        obtained_by=self._owner,
                        lineage=parent.lineage,
                        write_id=issued.write_id,
                        refreshed_at=issued.refreshed_at,
                        obtained_at=issued.obtained_at,
                    )
                    break
                except StaleWrite:
                    # Only possible if our lock lapsed (a freeze longer than its TTL) and
                    # another replica stored a pair meanwhile: theirs stays, ours is dropped.
                    log.error(
                        "a newer pair was stored during our refresh; keeping it",
                        extra={"event": "refresh_fenced"},
                    )
                    self._events.refreshed("fenced", trigger)
                    newer = await _store_call(self._store.load())
                    if newer is None or not newer.usable:
                        raise AuthorizationRequired() from None
                    return newer
                except TokenStoreError:
                    raise_if_cancelled()
                    if pending_since is None:
                        pending_since = time.monotonic()
                        self._events.write_pending(True)
                        log.warning(
                            "PandaDoc issued a new pair but the token store does not take it; "
                            "serving it from memory and retrying the write",
                            extra={"event": "pair_write_retry", "version": issued.version},
                        )
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, _RETRY_MAX_S)
        except asyncio.CancelledError:
            self._events.write_abandoned()
            log.error(
                "stopping before the new token pair was stored: it is lost, and with a "
                "single-use refresh token so is the authorization (connect the proxy again "
                "if requests get 503 authorization_required)",
                extra={"event": "pair_write_abandoned", "version": issued.version},
            )
            raise
        finally:
            if pending_since is not None:
                self._events.write_pending(False)
        if pending_since is not None:
            log.warning(
                "the new token pair is stored",
                extra={
                    "event": "pair_write_landed",
                    "version": stored.version,
                    "waited_s": round(time.monotonic() - pending_since, 3),
                },
            )
        log.info(
            "token refreshed",
            extra={"event": "refresh_ok", "version": stored.version, "trigger": trigger},
        )
        self._events.refreshed("ok", trigger)
        return stored

    async def _release(self, lock: RefreshLock) -> None:
        """Give the lock back, retrying while Redis does not answer: waiters would otherwise
        sit out its whole TTL. Past the TTL it has expired on its own."""
        give_up = time.monotonic() + lock.ttl_s
        delay = _RETRY_FIRST_S
        while True:
            try:
                await lock.release()
                return
            except TokenStoreError:
                raise_if_cancelled()
                if time.monotonic() > give_up:
                    log.warning(
                        "could not release the refresh lock; it expires on its own",
                        extra={"event": "lock_release_failed"},
                    )
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    async def _after_rejection(
        self, current: StoredPair, lock: RefreshLock, exc: TokenEndpointError, trigger: Trigger
    ) -> StoredPair:
        if exc.error != "invalid_grant":
            self._cooldown_until = time.monotonic() + self._settings.failed_refresh_cooldown_s
            # A note for the status page; the failure is logged below anyway.
            with contextlib.suppress(TokenStoreError):
                await self._store.record_refresh_failure(current.version, exc.error)
            level = logging.WARNING if exc.retryable else logging.ERROR
            log.log(
                level,
                "token refresh failed",
                extra={"event": "refresh_failed", "error": exc.error, "detail": exc.description},
            )
            self._events.refreshed("failed", trigger)
            raise RefreshFailed() from None
        # invalid_grant: lost for good, unless another pair arrived, or our lock lapsed and
        # another refresh may be in flight elsewhere.
        newer = self._newer(await _store_call(self._store.load()), current)
        if newer is not None:
            return newer
        if not await _store_call(lock.extend()):
            self._events.refreshed("failed", trigger)
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
        self._events.refreshed("rejected", trigger)
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
        """Reset the lock's TTL every third of it, for as long as the refresh runs; retried
        soon after a failure, so a Redis pause shorter than the TTL never loses the lock."""
        while True:
            await asyncio.sleep(lock.ttl_s / 3)
            while True:
                try:
                    if not await lock.extend():
                        log.error("the refresh lock was lost", extra={"event": "lock_lost"})
                        return
                    break
                except TokenStoreError:
                    log.warning("could not extend the refresh lock", extra={"event": "redis_error"})
                    await asyncio.sleep(min(1.0, lock.ttl_s / 10))

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
