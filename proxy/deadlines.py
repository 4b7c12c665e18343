"""Coarse deadlines for many tasks at once, checked by one timer.

Every forwarded request needs a deadline ("PandaDoc's headers within ``upstream.timeout_s``"),
and almost none ever fires. ``asyncio.timeout()`` creates, reschedules and cancels a timer
handle per use, which costs more than everything else the proxy adds to a request but the
access log. Here a deadline is an entry in a dict; one timer per :class:`Deadlines` sweeps the
dict every ``resolution_s`` while it is not empty and cancels the tasks whose time is up. A
deadline may therefore fire up to ``resolution_s`` late, never early; that is the trade.

Semantics are ``asyncio.timeout()``'s: the task is cancelled, and the cancellation comes out
of the ``with`` block as :class:`TimeoutError`, unless the task was also cancelled for another
reason (a client disconnecting), in which case the ``CancelledError`` goes on.

    deadlines = Deadlines()
    with deadlines.within(30):
        response = await session.request(...)

A deadline can also be moved while it runs (``restart``, ``pause``): an idle timeout over a
stream, armed only while the task waits for the next chunk.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """One task's deadline; use through :meth:`Deadlines.within`."""

    __slots__ = ("_cancelling", "_deadlines", "_task", "expired", "when")

    def __init__(self, deadlines: Deadlines, task: asyncio.Task[object], when: float) -> None:
        self._deadlines = deadlines
        self._task = task
        self.when = when
        self.expired = False
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        self._cancelling = self._task.cancelling()
        self._deadlines._add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._deadlines._entries.pop(self, None)
        # As asyncio.timeout(): our cancel is taken back; it becomes a TimeoutError only if it
        # is what ended the block and no one else cancelled the task meanwhile.
        if (
            self.expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def restart(self, seconds: float) -> None:
        """Due ``seconds`` from now (again)."""
        self.when = asyncio.get_running_loop().time() + seconds

    def pause(self) -> None:
        """Not due at all until the next ``restart``."""
        self.when = float("inf")

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()


class Deadlines:
    def __init__(self, resolution_s: float = 0.1) -> None:
        self.resolution_s = resolution_s
        # A dict as an insertion-ordered set; a deadline's time is its own ``when``, which
        # restart() and pause() move without touching the dict.
        self._entries: dict[Deadline, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def within(self, seconds: float) -> Deadline:
        """A context manager that times the current task out after ``seconds``."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadlines.within() must be used inside a task")
        return Deadline(self, task, loop.time() + seconds)

    def _add(self, deadline: Deadline) -> None:
        self._entries[deadline] = None
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.resolution_s, self._sweep)

    def _sweep(self) -> None:
        # Every entry is looked at: a few hundred dict items, ten times a second at most, and
        # only while some request is waiting.
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [deadline for deadline in self._entries if deadline.when <= now]
        for deadline in due:
            del self._entries[deadline]
            deadline._expire()
        if self._entries:
            self._timer = loop.call_later(self.resolution_s, self._sweep)
