"""Telling an operator when something happens or happened: a UTC date and "in 3 days"."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

__all__ = ["describe_moment"]

#: Moments further away than this are not dated (an expiry 31,000 years ahead, say).
_FAR_S = 100 * 365.25 * 86400


def describe_moment(epoch: float | None, *, decimals: int = 0) -> str:
    """``2027-11-28 21:06:16 UTC (in 365 days)``, or ``... (5 minutes ago)``; "unknown" for None."""
    if epoch is None or not math.isfinite(epoch):
        return "unknown"
    delta = epoch - time.time()
    if abs(delta) > _FAR_S:
        # Not dated: a nonsensical expiry (a date past the year 9999 cannot even be written).
        return "more than 100 years from now" if delta > 0 else "more than 100 years ago"
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    span = abs(delta)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if span >= size:
            amount = f"{span / size:.{decimals}f} {unit}"
            break
    else:
        amount = f"{span:.0f} seconds"
    return f"{stamp} (in {amount})" if delta >= 0 else f"{stamp} ({amount} ago)"
