"""Log lines written by a thread of their own, in batches, so that logging never blocks the loop.

A ``write()`` to stderr blocks when whatever reads it (a terminal, ``docker logs``, a journald
pipe) falls behind; on the event loop, that would stall every request of the process. Here the
caller only appends the finished line to a list, which is cheap and never blocks; a daemon
thread wakes on the first line, lingers a few milliseconds so that the lines of many requests
go out in one ``write()``, and writes them. Under load that is a few hundred writes a second at
most, instead of one per request, and the thread needs the GIL only to swap the list.

If the output stays blocked, lines pile up to ``max_pending`` and the ones beyond are dropped and
counted: a proxy must keep serving when its log reader hangs, and must not grow without bound.
The count is written as a line of its own once the output moves again.

Lines still pending are written at exit (``close()``, also registered with ``atexit``); a process
killed with SIGKILL loses at most the last ``linger_s`` of them.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO

__all__ = ["LineWriter"]


def _plain_drop_notice(dropped: int) -> str:
    return (
        f"pandadoc-proxy: {dropped} log lines were dropped: the log output was blocked and "
        "too many lines were waiting"
    )


class LineWriter:
    def __init__(
        self,
        stream: TextIO,
        *,
        linger_s: float = 0.02,
        max_pending: int = 20_000,
        drop_notice: Callable[[int], str] = _plain_drop_notice,
    ) -> None:
        self._stream = stream
        self._drop_notice = drop_notice
        self._linger_s = linger_s
        self._max_pending = max_pending
        # deque: append and popleft are atomic under the GIL, so neither side needs a lock.
        self._pending: deque[str] = deque()
        self._dropped = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, line: str) -> None:
        """Queue one line (without its newline). Safe from any thread; never blocks."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self._dropped += 1
            return
        pending.append(line)
        if len(pending) == 1:
            # The first line after the writer emptied the queue wakes it; the rest ride along.
            self._wake.set()

    def close(self) -> None:
        """Write what is pending and stop the thread (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=5)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            # Let the lines of the requests finishing meanwhile join this batch.
            self._closing.wait(self._linger_s)
            self._wake.clear()
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> None:
        # Emptied to the end: an append that raced with this loop either is taken now, or
        # finds the queue empty and wakes the writer again. Never stranded.
        lines: list[str] = []
        pending = self._pending
        try:
            while True:
                lines.append(pending.popleft())
        except IndexError:
            pass
        dropped, self._dropped = self._dropped, 0
        if dropped:
            lines.append(self._drop_notice(dropped))
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken output: nothing sensible is left to do with the lines.
            pass
