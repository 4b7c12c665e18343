"""The record of every request the emulator received: when, what, with which headers.

Tests of the proxy count what actually reached "PandaDoc" (how many requests in any
sliding window, whether a replayed POST arrived once, which token it carried), and users'
CI can do the same over HTTP (``GET /_emulator/requests``). The record is kept in arrival
order and bounded (``EmulatorSettings.request_record_size``, oldest dropped first), so a
long-running emulator does not grow without end. The control routes under
``/_emulator/`` are not recorded: steering the emulator is not traffic.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web

__all__ = ["RECORD", "RecordedRequest", "RequestLog"]


@dataclass
class RecordedRequest:
    """One request as it arrived; ``status`` is filled in once it has been answered."""

    seq: int
    at: float  # wall clock (time.time()), comparable across processes on one host
    monotonic: float  # the emulator's own clock, for windows inside one emulator
    method: str
    path: str  # the raw path with its query, as sent
    headers: list[tuple[str, str]]
    operation: str | None = None  # PandaDoc's operationId, for the API routes
    owner: str | None = None  # whose rate limits it counted against, when authenticated
    status: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at,
            "monotonic": self.monotonic,
            "method": self.method,
            "path": self.path,
            "headers": [list(pair) for pair in self.headers],
            "operation": self.operation,
            "owner": self.owner,
            "status": self.status,
        }


class RequestLog:
    """Requests in arrival order, at most ``size`` of them (the oldest are dropped)."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._records: deque[RecordedRequest] = deque(maxlen=size)
        self._clock = clock
        self._seq = 0

    def resize(self, size: int) -> None:
        if size != self._records.maxlen:
            self._records = deque(self._records, maxlen=size)

    def add(self, request: web.BaseRequest) -> RecordedRequest:
        self._seq += 1
        record = RecordedRequest(
            seq=self._seq,
            at=time.time(),
            monotonic=self._clock(),
            method=request.method,
            path=request.raw_path,
            headers=[
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in request.raw_headers
            ],
        )
        self._records.append(record)
        return record

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def select(
        self,
        *,
        since_seq: int = 0,
        method: str | None = None,
        path_prefix: str | None = None,
        operation: str | None = None,
    ) -> list[RecordedRequest]:
        """The records after ``since_seq`` that match every filter given."""
        return [
            record
            for record in self._records
            if record.seq > since_seq
            and (method is None or record.method == method.upper())
            and (path_prefix is None or record.path.startswith(path_prefix))
            and (operation is None or record.operation == operation)
        ]

    def most_in_window(
        self,
        window_s: float,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        operation: str | None = None,
    ) -> int:
        """The most recorded requests (filtered as ``select`` filters) in any window of
        ``window_s`` seconds, on the emulator's clock: what a sliding-window limit of that
        length must keep at or below its number. A window is half open, as the rate
        limiter counts: two requests exactly ``window_s`` apart are never in one."""
        records = self.select(method=method, path_prefix=path_prefix, operation=operation)
        times = sorted(record.monotonic for record in records)
        return max(
            (bisect.bisect_left(times, start + window_s) - i for i, start in enumerate(times)),
            default=0,
        )

    def clear(self) -> None:
        self._records.clear()

    @property
    def last_seq(self) -> int:
        return self._seq


#: The record of the request being handled (set by the app's outermost middleware).
RECORD: web.RequestKey[RecordedRequest] = web.RequestKey("emulator_record", RecordedRequest)
