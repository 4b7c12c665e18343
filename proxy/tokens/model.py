"""The token pair as the proxy stores and shares it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUTHORIZATION_STATES", "NewTokens", "StoredPair", "authorization_state"]


@dataclass(frozen=True, slots=True)
class NewTokens:
    """What a token endpoint (or an operator) handed us, before it is stored."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: Seconds the access token lives, when the token endpoint said so.
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
        expires_in = body.get("expires_in")
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = None
        return cls(access, refresh, float(expires_in) if expires_in is not None else None)


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

    @property
    def usable(self) -> bool:
        """True unless the token endpoint has rejected this pair's refresh token for good."""
        return self.authorization_lost is None

    def is_older_than(self, held: StoredPair) -> bool:
        """Whether this (stored) pair is an ancestor of ``held``: same lineage, lower version.

        Only a store that lost data (a failover to a replica that missed the last write) shows
        an ancestor of a pair some replica holds; within one lineage versions only grow.
        """
        return bool(held.lineage) and self.lineage == held.lineage and self.version < held.version

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def is_expired(self, now: float | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left <= 0


#: What an operator needs to know first, from the pair (or its absence).
AUTHORIZATION_STATES = ("connected", "refresh_failing", "authorization_required", "not_connected")


def authorization_state(pair: StoredPair | None) -> str:
    if pair is None:
        return "not_connected"
    if not pair.usable:
        return "authorization_required"
    return "refresh_failing" if pair.refresh_error else "connected"
