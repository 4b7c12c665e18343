"""What the token code reports as it works: one interface, implemented by the metrics.

The token code never imports the metrics; it is handed an object with these methods (the
metrics' ``TokenMetrics``, or :class:`NoTokenEvents` for the command line), so every figure
about tokens is reached one way.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["NoTokenEvents", "TokenEvents", "Trigger"]

#: What asked for a renewal: PandaDoc rejecting a token, the approaching expiry, a held token
#: already past its expiry, an operator.
Trigger = Literal["rejected", "proactive", "expired", "manual"]


class TokenEvents(Protocol):
    def refreshed(self, outcome: str, trigger: Trigger) -> None:
        """A refresh ended: ``ok``, ``failed``, ``rejected`` (authorization lost), ``fenced``
        (a newer pair won), ``ceiling`` (refused: too many refreshes in the last minute)."""

    def waited_for_lock(self, seconds: float) -> None:
        """A renewal waited this long for the lock or for another replica's new pair."""

    def store_failed(self) -> None:
        """A token store operation failed on Redis."""

    def write_pending(self, pending: bool) -> None:
        """A new pair is (True) or is no longer (False) waiting for its write to the store."""

    def write_abandoned(self) -> None:
        """The process stopped before a new pair's write landed: that pair is lost."""


class NoTokenEvents:
    def refreshed(self, outcome: str, trigger: Trigger) -> None:
        pass

    def waited_for_lock(self, seconds: float) -> None:
        pass

    def store_failed(self) -> None:
        pass

    def write_pending(self, pending: bool) -> None:
        pass

    def write_abandoned(self) -> None:
        pass
