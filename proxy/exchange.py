"""What the proxy records about one request while it handles it.

One object per request under one request key (``request[EXCHANGE]``), rather than a key per
fact: the middleware creates it, the forwarder fills it in, the access log reads it.

A client that leaves before its answer is complete (an upload cut short, a download abandoned)
is not an error of the proxy's: the code that notices raises :class:`ClientAborted`, and the
middleware records an :class:`Abort` here, which the access line reports as status 499 (nginx's
"client closed request") with the bytes moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "EXCHANGE",
    "REQUEST_ID_HEADER",
    "Abort",
    "AbortPhase",
    "ClientAborted",
    "Exchange",
]

#: Names one request in the access log, upstream and in the answer (contract section 4).
REQUEST_ID_HEADER = "X-Request-Id"

#: The access line's and the metrics' status for a request whose client left (nginx's 499).
#: Never sent: there is no one left to send it to.
CLIENT_CLOSED_REQUEST = 499

#: What the client was doing when it left: still sending its body, receiving the answer's
#: body, or anything before (waiting for PandaDoc, say).
AbortPhase = Literal["upload", "download", "waiting"]


@dataclass(frozen=True, slots=True)
class Abort:
    phase: AbortPhase
    #: Request body bytes that arrived from the client.
    bytes_received: int
    #: Response body bytes written to the client.
    bytes_sent: int


class ClientAborted(Exception):
    """The client closed its connection (or reset it) before the exchange was complete.

    Raised ``from None`` in place of the ``ConnectionError`` aiohttp raises: see
    :func:`forget_traceback` for why that one must not travel further.
    """

    def __init__(self, phase: AbortPhase, bytes_sent: int = 0) -> None:
        super().__init__(f"the client left during the {phase}")
        self.phase: AbortPhase = phase
        self.bytes_sent = bytes_sent


def forget_traceback(lost: BaseException) -> None:
    """Drop the traceback of a connection error that aiohttp keeps in the request.

    When a client goes away mid-body, aiohttp stores one ``ConnectionError`` in the
    request's body reader and raises that same object from every read. As it unwinds it
    collects a traceback whose frames hold the request, so::

        request -> body reader -> exception -> traceback -> frames -> request

    is a reference cycle: reference counting never frees it, nor the body bytes still buffered
    in the reader and the last chunk read, which it holds. Only the cyclic garbage collector
    can, and after the start-up tuning (``server.py``) it runs rarely: 200 uploads of 5 MiB,
    each aborted half-way, took a ``serve`` process from 57 to 187 MB, for good. Without the
    traceback there is no cycle (and the same 200 aborts grow it by about 1 MB).
    """
    lost.__traceback__ = None


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
    #: Set when the client left before the exchange was complete.
    abort: Abort | None = None


#: The request's :class:`Exchange`, set by the request middleware.
EXCHANGE: web.RequestKey[Exchange] = web.RequestKey("exchange", Exchange)
