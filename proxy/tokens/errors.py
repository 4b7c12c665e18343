"""Errors of the token store, and the one place where Redis errors become them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from redis.exceptions import LockError, RedisError

__all__ = ["RedisErrors", "StaleWrite", "TokenStoreError", "raise_if_cancelled"]


class TokenStoreError(Exception):
    """The store could not be reached or answered nonsense; nothing was changed by us."""


class StaleWrite(Exception):
    """A fenced write lost: the stored pair is no longer the version the writer started from."""

    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(f"stored pair is version {current}, the write expected {expected}")


class RedisErrors:
    """``with errors: await redis...``: a failed Redis call becomes :class:`TokenStoreError`.

    The one translation for everything the store and the lock send to Redis, so every failure
    is counted (``on_error``, the ``redis_errors_total`` metric) and none leaks redis-py's
    message, which may name the server's address with its password. A :class:`LockError` is
    not a failure of Redis (the lock is simply not ours) and passes through.
    """

    def __init__(self, on_error: Callable[[], None] = lambda: None) -> None:
        self.on_error = on_error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        if kind is None or issubclass(kind, LockError):
            return False
        if issubclass(kind, RedisError | OSError):
            self.on_error()
            raise TokenStoreError(f"Redis: {kind.__name__}") from None
        return False


def raise_if_cancelled() -> None:
    """Raise the cancellation of the current task if one was requested but never arrived.

    redis-py can swallow a cancellation that reaches it while it connects (seen with
    ``subscribe``, 5 times in 60 quick cancels): the call then returns as if nothing happened,
    and a loop around it would never stop. Called after such calls in loops that must end.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
