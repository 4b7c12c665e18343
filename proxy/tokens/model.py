"""The token pair as the proxy stores and shares it."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUTHORIZATION_STATES",
    "MAX_EXPIRES_IN_S",
    "NewTokens",
    "StoredPair",
    "authorization_state",
    "sane_expires_in",
]

log = logging.getLogger("pandadoc_proxy.tokens")

#: The longest access-token lifetime taken at its word: ten years. PandaDoc's tokens live
#: about one; a larger figure is an anomaly, clamped so that no date, page or JSON body has to
#: represent a time thousands of years away.
MAX_EXPIRES_IN_S = 10 * 365 * 86400.0


def sane_expires_in(value: Any, *, source: str = "the token endpoint") -> float | None:
    """``expires_in`` as a number of seconds the proxy can plan with, or None for "unknown".

    RFC 6749 section 5.1 makes it a positive number of seconds. A zero, negative or non-finite
    one (``0``, ``-3600``, ``NaN``) would make every replica refresh in a tight loop, a lifetime
    of thousands of years would break every date shown: both are logged as PandaDoc anomalies;
    the first kind counts as unknown (no proactive refresh; a 401 still renews), the second is
    clamped to :data:`MAX_EXPIRES_IN_S`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # Not a number: an anomaly, below.
            value = float(value.strip())
    if not isinstance(value, int | float) or isinstance(value, bool):
        _anomaly(source, "expires_in is not a number; the lifetime counts as unknown")
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        _anomaly(source, "expires_in is not a positive number; the lifetime counts as unknown")
        return None
    if seconds > MAX_EXPIRES_IN_S:
        _anomaly(source, "expires_in is absurdly large; clamped to ten years")
        return MAX_EXPIRES_IN_S
    return seconds


def _anomaly(source: str, problem: str) -> None:
    # The value itself is not secret, but it says nothing an operator can act on beyond this.
    log.warning(f"{source}: {problem}", extra={"event": "token_expiry_anomaly"})


@dataclass(frozen=True, slots=True)
class NewTokens:
    """What a token endpoint (or an operator) handed us, before it is stored."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: Seconds the access token lives, when known (see :func:`sane_expires_in`).
    expires_in: float | None = None

    @classmethod
    def from_token_response(cls, body: dict[str, Any]) -> NewTokens:
        """Read an RFC 6749 section 5.1 answer; raises ``ValueError`` when it is not one."""
        access = body.get("access_token")
        refresh = body.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        if not isinstance(refresh, str) or not refresh:
            raise ValueError("the token response has no refresh_token")
        return cls(access, refresh, sane_expires_in(body.get("expires_in")))


@dataclass(frozen=True, slots=True)
class StoredPair:
    """A pair as held in the token store.

    Times are wall-clock epoch seconds because every replica (and the command line) reads them;
    a monotonic clock means nothing outside one process. The pair itself never gets a Redis
    TTL: the refresh token must outlive the access token.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: When the access token stops working, if known.
    expires_at: float | None
    #: Goes up by one with every write; writes are compare-and-set on it (the fencing token).
    version: int
    #: When this pair was obtained, and by which replica ("cli" for the command line).
    obtained_at: float
    obtained_by: str
    #: Why the pair can no longer be used (its refresh token was rejected); None while it can.
    authorization_lost: str | None = None
    #: The last failed attempt to refresh this pair (the token endpoint down, say), if any.
    refresh_error: str | None = None
    refresh_failed_at: float | None = None
    #: When a replica wrote this pair back into a store that had come back empty, if it did.
    restored_at: float | None = None
    #: Names the authorization this pair descends from: refreshes keep it, a new connect or
    #: ``token set`` starts another. Within one lineage a higher version is always newer.
    lineage: str = ""
    #: Names the one write that stored this pair, so that a write retried after a lost answer
    #: recognises itself in the store instead of taking its own pair for a rival's.
    write_id: str = ""
    #: When the refreshes of this lineage that led to this pair happened (the last few, oldest
    #: first): the fleet-wide record behind ``tokens.max_refreshes_per_minute``.
    refreshed_at: tuple[float, ...] = ()
    #: True while this pair exists only in this process's memory: PandaDoc has issued it, its
    #: write to the store has not landed yet (the refresher keeps trying). Never stored.
    uncommitted: bool = False

    @property
    def usable(self) -> bool:
        """True unless the token endpoint has rejected this pair's refresh token for good."""
        return self.authorization_lost is None

    def is_older_than(self, held: StoredPair) -> bool:
        """Whether this (stored) pair is an ancestor of ``held``: same lineage, lower version.

        Only a store that lost data (a failover to a replica that missed the last write), or a
        write still in flight, shows an ancestor of a pair some replica holds; within one
        lineage versions only grow.
        """
        return bool(held.lineage) and self.lineage == held.lineage and self.version < held.version

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def is_expired(self, now: float | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left <= 0

    def refreshes_since(self, since: float) -> int:
        """How many refreshes of this lineage happened after ``since`` (epoch seconds)."""
        return sum(1 for moment in self.refreshed_at if moment > since)


#: What an operator needs to know first, from the pair (or its absence). ``api_key``: the proxy
#: sends a fixed PandaDoc API key and holds no pair at all.
AUTHORIZATION_STATES = (
    "connected",
    "refresh_failing",
    "authorization_required",
    "not_connected",
    "api_key",
)


def authorization_state(pair: StoredPair | None) -> str:
    if pair is None:
        return "not_connected"
    if not pair.usable:
        return "authorization_required"
    return "refresh_failing" if pair.refresh_error else "connected"
