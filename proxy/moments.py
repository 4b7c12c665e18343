"""Telling an operator when something happens or happened: a UTC date and "in 3 days"."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["describe_moment"]


def describe_moment(epoch: float | None, *, decimals: int = 0) -> str:
    """``2027-11-28 21:06:16 UTC (in 365 days)``, or ``... (5 minutes ago)``; "unknown" for None."""
    if epoch is None:
        return "unknown"
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = epoch - time.time()
    span = abs(delta)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if span >= size:
            amount = f"{span / size:.{decimals}f} {unit}"
            break
    else:
        amount = f"{span:.0f} seconds"
    return f"{stamp} (in {amount})" if delta >= 0 else f"{stamp} ({amount} ago)"
