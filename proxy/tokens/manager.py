"""The one object the forwarder asks for a token.

Reading Redis on every request would add a round trip to the hot path, so the manager holds
the current pair in memory and re-reads the store at most every ``redis.token_cache_s``
seconds. That copy can lag behind another replica's write by that long; the lag is harmless
because a request sent with a replaced token comes back 401, and the 401 path re-reads the
store before anything else (and refreshes nothing when the store already has a newer pair).

Concurrent readers share one store read: when the cached copy goes stale under load, one
``load()`` is in flight and every request awaits its result.

If the store is unreachable, requests keep flowing on the pair held in memory for as long as
its access token has not expired; only without such a pair do they get 503
``token_store_unavailable``.

Renewal (after a 401, or ahead of expiry) is the :class:`~.refresher.Refresher`'s job; the
manager adopts what it returns, so this process uses the new pair at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..errors import AuthorizationRequired, ProxyError, TokenStoreUnavailable
from ..logs import remember_secret
from .errors import TokenStoreError
from .model import StoredPair
from .refresher import Refresher, Trigger
from .store import TokenStore

__all__ = ["TokenManager"]

log = logging.getLogger("pandadoc_proxy.tokens")

#: While the store is down, how long to wait between attempts to reach it again.
_STORE_RETRY_S = 1.0
#: The proactive refresher looks at the stored pair at least this often.
_PROACTIVE_CHECK_S = 5.0


class TokenManager:
    def __init__(
        self,
        store: TokenStore,
        refresher: Refresher,
        *,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_store_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.refresher = refresher
        self._cache_s = cache_s
        self._clock = clock
        self._held: StoredPair | None = None
        self._fresh_until = float("-inf")
        self._loading: asyncio.Future[StoredPair | None] | None = None
        self._adoptions = 0
        self._on_store_error = on_store_error
        #: The version of a pair PandaDoc has rejected and whose renewal is under way.
        self._rejected_version: int | None = None

    @property
    def held(self) -> StoredPair | None:
        """The pair this process holds in memory, possibly stale."""
        return self._held

    def fresh(self) -> StoredPair | None:
        """The held pair if it can be used as it is (no store read due), else None: the
        common case, answered without a coroutine. Otherwise ask :meth:`current`."""
        pair = self._held
        if (
            pair is not None
            and pair.usable
            and self._clock() < self._fresh_until
            and pair.version != self._rejected_version
        ):
            return pair
        return None

    async def current(self) -> StoredPair:
        """The pair to use for a request, or a :class:`ProxyError` saying why there is none."""
        pair = self._held
        if pair is None or self._clock() >= self._fresh_until:
            try:
                pair = await self.reload()
            except TokenStoreError:
                held = self._held
                if held is not None and held.usable and not held.is_expired():
                    return held
                raise TokenStoreUnavailable() from None
        if pair is None:
            raise AuthorizationRequired()
        if pair.version == self._rejected_version:
            # PandaDoc has refused this very token and its renewal is under way: wait for the
            # new pair instead of sending a request that can only come back 401 and be sent
            # again. In a stampede, this spares every request that arrives after the first
            # 401 a round trip.
            return await self.renew(pair, trigger="rejected")
        if not pair.usable:
            raise AuthorizationRequired(
                "PandaDoc rejected the stored refresh token: an operator must connect the "
                "proxy again."
            )
        return pair

    async def renew(self, rejected: StoredPair, *, trigger: Trigger) -> StoredPair:
        """A pair to use instead of one PandaDoc rejected (see :class:`Refresher`)."""
        if trigger == "rejected":
            self._rejected_version = rejected.version
        try:
            pair = await self.refresher.renew(rejected, trigger=trigger)
        except AuthorizationRequired:
            self._fresh_until = float("-inf")  # Re-read, to hold the "authorization lost" mark.
            raise
        finally:
            # Also after a failed renewal: the next request tries the held token again (the
            # 401 may have been PandaDoc's passing trouble), not the renewal's error.
            if self._rejected_version == rejected.version:
                self._rejected_version = None
        self.adopt(pair)
        return pair

    async def keep_fresh(self) -> None:
        """Refresh ahead of expiry, also when no traffic flows; runs until cancelled."""
        while True:
            try:
                pair = await self.reload()
            except TokenStoreError:
                await asyncio.sleep(_PROACTIVE_CHECK_S)
                continue
            due_in = None if pair is None else self.refresher.seconds_until_due(pair)
            if pair is None or due_in is None or due_in > 0:
                await asyncio.sleep(
                    _PROACTIVE_CHECK_S if due_in is None else min(due_in, _PROACTIVE_CHECK_S)
                )
                continue
            try:
                await self.renew(pair, trigger="proactive")
            except ProxyError as exc:
                log.warning(
                    "proactive refresh did not succeed",
                    extra={"event": "proactive_refresh_failed", "code": exc.code},
                )
                await asyncio.sleep(_PROACTIVE_CHECK_S)

    async def reload(self) -> StoredPair | None:
        """Read the store now (sharing a read already in flight) and hold what it says."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(self._loading_done)
        # Shielded: one caller giving up (a client disconnecting) must not cancel the read
        # that every other waiting request shares.
        return await asyncio.shield(self._loading)

    async def close(self) -> None:
        """Stop a store read still in flight, before the store itself is closed."""
        loading = self._loading
        if loading is not None and not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError, TokenStoreError):
                await loading

    def _loading_done(self, future: asyncio.Future[StoredPair | None]) -> None:
        self._loading = None
        if not future.cancelled():
            future.exception()  # Marks it retrieved even when no caller is left to await it.

    async def _load(self) -> StoredPair | None:
        adopted_before = self._adoptions
        try:
            pair = await self.store.load()
        except TokenStoreError as exc:
            log.warning(
                "token store unreachable", extra={"event": "redis_error", "detail": str(exc)}
            )
            self._fresh_until = self._clock() + _STORE_RETRY_S
            raise
        held = self._held
        # The store lost what this process holds: nothing stored, or an older pair of its lineage.
        if held is not None and held.usable and (pair is None or pair.is_older_than(held)):
            pair = await self._write_back(held)
        if self._adoptions != adopted_before:
            # This process stored a pair while the read was in flight: the read may predate
            # that write, so it must not roll the held copy back.
            return self._held
        self._adopt(pair)
        return pair

    async def _write_back(self, held: StoredPair) -> StoredPair | None:
        """The store lost the pair this process holds (Redis restarted without persistence, or
        failed over to a replica that had not seen the last write): write it back, so no one
        has to re-authorize (see store.restore)."""
        if await self.store.restore(held):
            log.warning(
                "the token store lost the current pair; wrote back the one this replica holds",
                extra={"event": "token_restored", "version": held.version},
            )
        return await self.store.load()

    def adopt(self, pair: StoredPair) -> None:
        """Hold ``pair``, just written to the store or read from it by the refresher."""
        self._adoptions += 1
        self._adopt(pair)

    def _adopt(self, pair: StoredPair | None) -> None:
        if pair is not None:
            remember_secret(pair.access_token, pair.refresh_token)
        self._held = pair
        self._fresh_until = self._clock() + self._cache_s
