"""PandaDoc's rate limits, emulated: per user, per operation, over a sliding window.

PandaDoc counts each user's requests per operation over the last 60 seconds (a sliding
window, not fixed minutes) and answers 429 beyond the operation's number
(developers.pandadoc.com, "Limits", with the raised numbers of its 2025-06-11 changelog);
a sandbox key gets 10 per minute for every operation. The emulator does the same when
``rate_limits.enabled`` is set (it is off by default, so nothing is throttled unless a
test or a user asks for it).

Whose count: every token minted from one authorization (its refreshes included) counts
as one user, as PandaDoc counts the user and not the token; the API key is a user of its
own. Requests that are refused (401, 429) do not count, as in Django REST framework's
throttles, which PandaDoc's API is built on.

The 429 comes in the variants PandaDoc has been seen to send: ``{"type": "throttled",
"detail": "Request was throttled."}`` without ``Retry-After`` (what its spec declares), with
``Retry-After: N`` (``retry_after``), and with the message "Request was throttled. Expected
available in N seconds." (``detail: expected``), where N is when the oldest request in the
window leaves it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .errors import ApiError, throttled

__all__ = [
    "PRESETS",
    "PRODUCTION_LIMITS",
    "SANDBOX_LIMIT",
    "RateLimitSettings",
    "SlidingWindowLimiter",
    "limit_for",
    "throttle_error",
]

#: Requests per minute for each class of operation in PandaDoc's published table.
PRODUCTION_LIMITS: dict[str, int] = {
    "create_from_pdf": 300,
    "create_from_template": 500,
    "send": 400,
    "details": 600,
    "download": 100,
    "download_protected": 300,
    "list_status_delete": 2000,
}
SANDBOX_LIMIT = 10
PRESETS = ("production", "sandbox")
DETAILS = ("plain", "expected")


@dataclass(frozen=True)
class RateLimitSettings:
    """The ``rate_limits`` section of the emulator's settings."""

    enabled: bool = False
    preset: str = "production"  # or "sandbox": 10 per window for every operation
    window_s: float = 60.0
    #: Requests per window by operationId (``"listDocuments": 5``), or ``"*"`` for every
    #: operation not named; they override the preset.
    limits: dict[str, int] = field(default_factory=dict)
    retry_after: bool = False  # send Retry-After with the 429
    detail: str = "plain"  # "expected": "... Expected available in N seconds."


def limit_for(settings: RateLimitSettings, operation: str, limit_class: str | None) -> int | None:
    """How many requests ``operation`` allows per window; None when it is not limited.

    Operations outside PandaDoc's table (contacts, members, webhooks...) are not limited
    by the production preset, as PandaDoc publishes no number for them.
    """
    if operation in settings.limits:
        return settings.limits[operation]
    if "*" in settings.limits:
        return settings.limits["*"]
    if settings.preset == "sandbox":
        return SANDBOX_LIMIT
    return PRODUCTION_LIMITS.get(limit_class) if limit_class else None


class SlidingWindowLimiter:
    """The times of the requests each (user, operation) made within the last window.

    Memory is bounded by the limits: a key never holds more entries than its limit, and
    entries older than the window are dropped on the next request of that key.
    """

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def acquire(self, key: tuple[str, str], limit: int, window_s: float, now: float) -> float:
        """Count a request now and return 0, or return the seconds until one is allowed."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) < limit:
            hits.append(now)
            return 0.0
        if limit <= 0:
            return window_s
        return max(hits[len(hits) - limit] + window_s - now, 0.001)

    def usage(self, now: float, window_s: float) -> dict[str, dict[str, int]]:
        """Requests counted in the current window, by user and operation."""
        usage: dict[str, dict[str, int]] = {}
        for (owner, operation), hits in self._hits.items():
            count = sum(1 for moment in hits if moment > now - window_s)
            if count:
                usage.setdefault(owner, {})[operation] = count
        return usage

    def reset(self) -> None:
        self._hits.clear()


def throttle_error(settings: RateLimitSettings, wait_s: float) -> ApiError:
    """PandaDoc's 429 in the configured variant, naming ``wait_s`` rounded up."""
    seconds = max(1, math.ceil(wait_s))
    detail = "Request was throttled."
    if settings.detail == "expected":
        unit = "second" if seconds == 1 else "seconds"  # DRF's own wording, singular included
        detail += f" Expected available in {seconds} {unit}."
    return throttled(detail, seconds if settings.retry_after else None)
