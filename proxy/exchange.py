"""What the proxy records about one request while it handles it.

One object per request under one request key (``request[EXCHANGE]``), rather than a key per
fact: the middleware creates it, the forwarder fills it in, the access log reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Exchange"]


@dataclass(slots=True)
class Exchange:
    #: The client's own X-Request-Id when it is plain enough, else a new one.
    request_id: str
    #: ``time.perf_counter()`` when the request arrived (uvloop's clock ticks in whole ms).
    started: float
    #: Seconds spent waiting for PandaDoc's response headers, summed over attempts.
    upstream_seconds: float = 0.0
    #: Whether the request was sent again after PandaDoc rejected the token.
    replayed: bool = False
