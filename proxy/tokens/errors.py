"""Errors of the token store, shared by the store and the lock."""

from __future__ import annotations

__all__ = ["StaleWrite", "TokenStoreError"]


class TokenStoreError(Exception):
    """The store could not be reached or answered nonsense; nothing was changed by us."""


class StaleWrite(Exception):
    """A fenced write lost: the stored pair is no longer the version the writer started from."""

    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(f"stored pair is version {current}, the write expected {expected}")
