"""The one owner of the token pair in a process: what the forwarder asks for a token.

Reading Redis on every request would add a round trip to the hot path, so the manager holds
the current pair in memory. It learns of every change at once: each write of the pair, by
any replica or the command line, publishes a notice in Redis (``store.py``), and the manager
listens from start-up and re-reads the pair on each one (:meth:`follow_notices`). After the
subscription breaks (a Redis restart, a failover) it subscribes again and re-reads once, since
it may have missed notices. Two fallbacks keep a lost notice from mattering for long: the held
copy is re-read after ``redis.token_cache_s`` (after one second while the subscription is
down), and always before its access token expires, so a replica never sends a token it can
know is dead.

Concurrent readers share one store read: when the held copy is due for a re-read under load,
one ``load()`` is in flight and every request awaits its result. Reads never roll the held
copy back: a read that started before a newer one, or before this process stored a pair,
is ignored.

If the store is unreachable, requests keep flowing on the pair held in memory for as long as
its access token has not expired; only without such a pair do they get 503
``token_store_unavailable``.

Renewal (after a 401, or ahead of expiry) is the :class:`~.refresher.Refresher`'s job; it hands
every pair it obtains to the manager at once, so this process uses a new pair from the moment
PandaDoc issued it, before its write to the store has landed.

Every other write of the pair goes through here too: a new authorization (:meth:`replace`,
for the connect flow and ``token set``/``token exchange``), a refresh on request
(:meth:`refresh_now`, ``token refresh``), and a write-back of the held pair when the store lost
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import aiohttp

from ..config import OAuthConfig, TokensConfig
from ..errors import (
    AuthorizationRequired,
    ProxyError,
    RefreshCeilingReached,
    RefreshFailed,
    TokenStoreUnavailable,
)
from ..logs import remember_secret
from .errors import StaleWrite, TokenStoreError, raise_if_cancelled
from .events import NoTokenEvents, TokenEvents, Trigger
from .model import NewTokens, StoredPair
from .refresher import Refresher
from .store import SUBSCRIBED, TokenStore, new_write_id, restore_if_lost

__all__ = ["TokenManager"]

log = logging.getLogger("pandadoc_proxy.tokens")

#: While the store is down, how long to wait between attempts to reach it again.
_STORE_RETRY_S = 1.0
#: While the notice subscription is down, how long the held copy is trusted.
_UNHEARD_TRUST_S = 1.0
#: The proactive refresher looks at the stored pair at least this often.
_PROACTIVE_CHECK_S = 5.0
#: How long requests wait for a pair another replica announced it is replacing.
_REPLACEMENT_WAIT_S = 5.0
#: A new authorization waits this long for a store that does not answer before giving up.
_REPLACE_PATIENCE_S = 10.0


class TokenManager:
    def __init__(
        self,
        store: TokenStore,
        session: aiohttp.ClientSession,
        oauth: OAuthConfig,
        settings: TokensConfig,
        *,
        owner: str,
        cache_s: float,
        events: TokenEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresher = Refresher(
            store, session, oauth, settings, owner=owner, adopt=self.adopt, events=events
        )
        self._events = events or NoTokenEvents()
        self._cache_s = cache_s
        self._renewal_wait_s = settings.renewal_wait_s
        self._clock = clock
        self._held: StoredPair | None = None
        self._fresh_until = float("-inf")
        self._loading: asyncio.Future[StoredPair | None] | None = None
        self._adoptions = 0
        #: Reads are numbered as they start; only the latest-started read's result is held.
        self._reads_started = 0
        self._read_held = 0
        self._reads_after_notices: set[asyncio.Future[StoredPair | None]] = set()
        #: Whether the notice subscription is up, and whether the store answered last time.
        self._listening = False
        self._store_answers = True
        #: The version of a pair PandaDoc has rejected and whose renewal is under way.
        self._rejected_version: int | None = None
        #: The version of the held pair that some replica announced it is replacing: new
        #: requests wait for its successor instead of sending a token about to be revoked.
        self._replacing_version: int | None = None
        self._replaced = asyncio.Event()

    @property
    def held(self) -> StoredPair | None:
        """The pair this process holds in memory, possibly stale."""
        return self._held

    @property
    def listening(self) -> bool:
        """Whether this process hears the store's notices right now."""
        return self._listening

    def fresh(self) -> StoredPair | None:
        """The held pair if it can be used as it is (no store read due), else None: the
        common case, answered without a coroutine. Otherwise ask :meth:`current`."""
        pair = self._held
        if (
            pair is not None
            and pair.usable
            and self._clock() < self._fresh_until
            and pair.version != self._rejected_version
            and pair.version != self._replacing_version
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
        if pair is not None and pair.version == self._replacing_version:
            pair = await self._successor_of(pair)
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
        if pair.is_expired():
            # Known dead, and still what the store holds: renew rather than send it. Past the
            # refresh ceiling, the pair in hand is all there is: PandaDoc decides.
            with contextlib.suppress(RefreshCeilingReached):
                return await self.renew(pair, trigger="expired")
        return pair

    async def _successor_of(self, pair: StoredPair) -> StoredPair | None:
        """The pair that replaces ``pair``, once the replica that announced it is replacing
        it has one; after a few seconds without (that replica failing, or gone), ``pair``."""
        replaced = self._replaced
        try:
            async with asyncio.timeout(_REPLACEMENT_WAIT_S):
                await replaced.wait()
        except TimeoutError:
            self._end_replacement(pair.version)
        return self._held

    def _expect_replacement(self, version: int) -> None:
        held = self._held
        if held is not None and held.version == version and self._replacing_version != version:
            self._replacing_version = version
            self._replaced = asyncio.Event()

    def _end_replacement(self, version: int | None = None) -> None:
        if self._replacing_version is not None and version in (None, self._replacing_version):
            self._replacing_version = None
            self._replaced.set()

    async def renew(self, rejected: StoredPair, *, trigger: Trigger) -> StoredPair:
        """A pair to use instead of one PandaDoc rejected (see :class:`Refresher`).

        A request waits at most ``tokens.renewal_wait_s`` for it; the renewal itself goes on.
        """
        if trigger == "rejected":
            self._rejected_version = rejected.version
        deadline = asyncio.timeout(self._renewal_wait_s)
        try:
            async with deadline:
                pair = await self.refresher.renew(rejected, trigger=trigger)
        except TimeoutError:
            if not deadline.expired():
                raise  # The renewal's own, not the wait's.
            if not self._store_answers or not self._listening:
                raise TokenStoreUnavailable(
                    "The token store (Redis) does not answer, so the token cannot be renewed "
                    "yet; try again shortly."
                ) from None
            raise RefreshFailed(
                "Renewing the token takes longer than tokens.renewal_wait_s; it goes on in the "
                "background, try again shortly."
            ) from None
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

    async def stored_instead_of(self, rejected: StoredPair) -> StoredPair | None:
        """After PandaDoc rejected ``rejected``: the stored pair if it is another one (this
        process's copy was behind), None if ``rejected`` is still the stored pair."""
        try:
            pair = await self.reload()
        except TokenStoreError:
            return None
        if pair is None or not pair.usable or pair.version == rejected.version:
            return None
        return pair

    async def refresh_now(self) -> StoredPair:
        """Refresh the stored pair now, under the replicas' lock, and wait until the new pair
        is in the store (``token refresh``)."""
        current = await self.store.load()
        if current is None:
            raise AuthorizationRequired("No token is stored: connect the proxy to PandaDoc first.")
        pair = await self.refresher.settled(current, trigger="manual")
        self.adopt(pair)
        return pair

    async def replace(self, tokens: NewTokens, *, obtained_by: str) -> StoredPair:
        """Store a new authorization (the connect flow, ``token set``, ``token exchange``).

        Fenced, on top of whatever is stored when the write lands: a refresh stored in
        between is overwritten on purpose (by a retry on top of it), because the new
        authorization is what the operator asked for and its refresh token is unused. A store
        that does not answer is waited for up to ten seconds (a failover), with the same write
        id, so a retry of a write that landed after all recognises itself.
        """
        write_id = new_write_id()
        give_up = time.monotonic() + _REPLACE_PATIENCE_S
        delay = 0.1
        while True:
            try:
                current = await self.store.load()
                stored = await self.store.save(
                    tokens,
                    expected_version=current.version if current else 0,
                    obtained_by=obtained_by,
                    write_id=write_id,
                )
            except StaleWrite:
                continue  # Someone stored a pair between our read and our write: on top of it.
            except TokenStoreError:
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.adopt(stored)
            return stored

    async def keep_fresh(self) -> None:
        """Refresh ahead of expiry, also when no traffic flows; runs until cancelled."""
        while True:
            try:
                pair = await self.reload()
            except TokenStoreError:
                raise_if_cancelled()
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

    async def follow_notices(self) -> None:
        """Re-read the pair whenever the store announces a change; runs until cancelled."""
        delay = 0.5
        while True:
            try:
                async for notice in self.store.notices():
                    kind, _, version = notice.partition(" ")
                    if kind == "renewing" and version.isdigit():
                        self._expect_replacement(int(version))
                        continue
                    if kind == "settled" and version.isdigit():
                        self._end_replacement(int(version))
                    elif notice == SUBSCRIBED:
                        log.info(
                            "listening for new token pairs",
                            extra={"event": "notices_subscribed"},
                        )
                        self._listening = True
                        delay = 0.5
                    # On subscribing too: notices sent while nobody listened were missed.
                    self._read_after_notice()
            except Exception as exc:  # A TokenStoreError, or redis-py giving up otherwise.
                raise_if_cancelled()
                if not isinstance(exc, TokenStoreError):
                    log.warning(
                        "the token store's notices failed",
                        extra={"event": "notices_failed", "detail": type(exc).__name__},
                    )
                if self._listening:
                    log.warning(
                        "lost the token store's notices; re-reading the pair every second "
                        "until they are back",
                        extra={"event": "notices_lost"},
                    )
                self._listening = False
                self._fresh_until = min(self._fresh_until, self._clock() + _UNHEARD_TRUST_S)
                self._end_replacement()  # Its end could not be heard.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 5.0)

    def _read_after_notice(self) -> None:
        """A fresh read of the store (never one that started before the notice), in a task
        of its own: the listening task then only ever waits on the subscription itself,
        where a shutdown's cancellation reliably reaches it. (A cancellation arriving just
        as one of redis-py's timed reads times out can be lost on Python 3.11.)"""
        read = asyncio.ensure_future(self._load())
        self._reads_after_notices.add(read)
        read.add_done_callback(self._read_after_notice_done)

    def _read_after_notice_done(self, read: asyncio.Future[StoredPair | None]) -> None:
        self._reads_after_notices.discard(read)
        if not read.cancelled():
            read.exception()  # A store that does not answer is handled in _load.

    async def reload(self) -> StoredPair | None:
        """Read the store now (sharing a read already in flight) and hold what it says."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(self._loading_done)
        # Shielded: one caller giving up (a client disconnecting) must not cancel the read
        # that every other waiting request shares.
        return await asyncio.shield(self._loading)

    async def ping(self) -> None:
        """Raise :class:`TokenStoreError` unless the store answers."""
        await self.store.ping()

    async def put_oauth_state(self, state: str, binding: str, ttl_s: int) -> None:
        """Remember an OAuth ``state`` of the connect flow (see ``store.put_oauth_state``)."""
        await self.store.put_oauth_state(state, binding, ttl_s)

    async def take_oauth_state(self, state: str) -> str | None:
        """The binding of ``state``, forgetting it: a state works once."""
        return await self.store.take_oauth_state(state)

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop a store read still in flight, and give a new pair being written ``grace_s``
        to land, before the store itself is closed."""
        reads = [read for read in (self._loading, *self._reads_after_notices) if read is not None]
        for read in reads:
            read.cancel()
        if reads:
            await asyncio.wait(reads)
        await self.refresher.close(grace_s)

    def _loading_done(self, future: asyncio.Future[StoredPair | None]) -> None:
        if self._loading is future:
            self._loading = None
        if not future.cancelled():
            future.exception()  # Marks it retrieved even when no caller is left to await it.

    async def _load(self) -> StoredPair | None:
        self._reads_started += 1
        read = self._reads_started
        adopted_before = self._adoptions
        try:
            pair = await self.store.load()
        except TokenStoreError as exc:
            if self._store_answers:
                log.warning(
                    "token store unreachable", extra={"event": "redis_error", "detail": str(exc)}
                )
            self._store_answers = False
            self._fresh_until = self._clock() + _STORE_RETRY_S
            raise
        self._store_answers = True
        if self._adoptions != adopted_before or read < self._read_held:
            # This process stored a pair, or a later read finished, while this read was in
            # flight: its answer may predate that, and must not roll the held copy back.
            return self._held
        held = self._held
        if held is not None and held.uncommitted and (pair is None or pair.is_older_than(held)):
            # Our own new pair, still on its way into the store (the refresher retries its
            # write): the store shows its parent until then. Not lost, so not written back.
            pair = held
        elif held is not None:
            pair = await restore_if_lost(self.store, held, pair)
        self._read_held = read
        self._adopt(pair)
        return pair

    def adopt(self, pair: StoredPair) -> None:
        """Hold ``pair``: just issued, written or found newer by the refresher, or stored here."""
        held = self._held
        if held is not None and pair.is_older_than(held):
            return  # A late report of a pair this process has already moved past.
        self._adoptions += 1
        self._adopt(pair)

    def _adopt(self, pair: StoredPair | None) -> None:
        if pair is not None:
            remember_secret(pair.access_token, pair.refresh_token)
        self._held = pair
        if pair is None or pair.version != self._replacing_version:
            self._end_replacement()
        trust = self._cache_s if self._listening else min(self._cache_s, _UNHEARD_TRUST_S)
        left = pair.seconds_left() if pair is not None else None
        if left is not None:
            trust = min(trust, max(left, 0.0))  # Re-read, at the latest, when it expires.
        self._fresh_until = self._clock() + trust
