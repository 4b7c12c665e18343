"""Documents changing by themselves on time: processing ends, sent documents complete.

The document store advances a document lazily whenever it is read; this task also
advances them on time, so the ``document_state_changed`` webhook of a processed document
goes out when processing ends, not when someone next asks. It sleeps until the store's
next due moment and is woken early when a new one is scheduled (a create, a send): no
polling loop runs while nothing is due.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from .state import EMULATOR_STATE

__all__ = ["document_lifecycle"]

#: The longest single sleep, so a clock swapped by a test (EmulatorState.clock) is
#: looked at again now and then instead of trusted for the whole wait.
_MAX_SLEEP_S = 1.0


async def _advance_on_time(app: web.Application, wake: asyncio.Event) -> None:
    state = app[EMULATOR_STATE]
    while True:
        state.documents.advance_all()
        due = state.documents.next_due()
        timeout = None if due is None else min(max(due - state.clock(), 0.0), _MAX_SLEEP_S)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


async def document_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the task that advances documents on time, cancelled on shutdown."""
    documents = app[EMULATOR_STATE].documents
    wake = asyncio.Event()
    documents.on_schedule = wake.set
    task = asyncio.get_running_loop().create_task(_advance_on_time(app, wake))
    try:
        yield
    finally:
        documents.on_schedule = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
