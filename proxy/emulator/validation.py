"""Checking request bodies and query strings field by field, as PandaDoc's API does.

PandaDoc answers a request with wrong fields with a 400 whose ``detail`` names every wrong
field and what is wrong with it, in Django REST framework's words
(``{"name": ["This field is required."]}``; a list of objects gets one entry per item).
``Fields`` reads one JSON object and collects those messages; ``done()`` raises them all
at once, so a client learns about every mistake in one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = ["Fields", "Invalid", "query_int"]

T = TypeVar("T")

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
BLANK = "This field may not be blank."


class Invalid(Exception):
    """Field errors, rendered as a 400 whose ``detail`` is ``errors``."""

    def __init__(self, errors: dict[str, object]) -> None:
        super().__init__(errors)
        self.errors = errors


def _kind(value: object) -> str:
    return {dict: "dict", list: "list", str: "str", bool: "bool", int: "int", float: "float"}.get(
        type(value), type(value).__name__
    )


class Fields:
    """The fields of one JSON object; each getter returns the value or None and notes errors."""

    def __init__(self, data: object) -> None:
        if not isinstance(data, dict):
            got = "null" if data is None else _kind(data)
            raise Invalid(
                {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
            )
        self.data: dict[str, object] = data
        self.errors: dict[str, object] = {}

    def _get(self, name: str, required: bool, nullable: bool) -> object:
        if name not in self.data:
            if required:
                self.errors[name] = [REQUIRED]
            return None
        value = self.data[name]
        if value is None and not nullable:
            self.errors[name] = [NOT_NULL]
        return value

    def present(self, name: str) -> bool:
        return name in self.data

    def string(
        self, name: str, *, required: bool = False, blank: bool = True, nullable: bool = False
    ) -> str | None:
        value = self._get(name, required, nullable)
        if value is None:
            return None
        if not isinstance(value, str):
            self.errors[name] = ["Not a valid string."]
            return None
        if not blank and not value.strip():
            self.errors[name] = [BLANK]
            return None
        return value

    def url(self, name: str, *, required: bool = False) -> str | None:
        value = self.string(name, required=required, blank=False)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.errors[name] = ["Enter a valid URL."]
            return None
        return value

    def email(self, name: str, *, required: bool = False, nullable: bool = False) -> str | None:
        value = self.string(name, required=required, blank=False, nullable=nullable)
        if value is not None and (value.count("@") != 1 or not value.split("@")[1]):
            self.errors[name] = ["Enter a valid email address."]
            return None
        return value

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        value = self._get(name, required, False)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.errors[name] = ["Must be a valid boolean."]
            return None
        return value

    def integer(self, name: str, *, required: bool = False, low: int | None = None) -> int | None:
        value = self._get(name, required, True)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors[name] = ["A valid integer is required."]
            return None
        if low is not None and value < low:
            self.errors[name] = [f"Ensure this value is greater than or equal to {low}."]
            return None
        return value

    def number(self, name: str, *, required: bool = False, low: float = 0) -> float | None:
        value = self._get(name, required, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.errors[name] = ["A valid number is required."]
            return None
        if not math.isfinite(value) or value < low:
            self.errors[name] = [f"Ensure this value is greater than or equal to {low:g}."]
            return None
        return float(value)

    def choice(self, name: str, choices: Container[object], *, required: bool = False) -> object:
        value = self._get(name, required, False)
        if value is None:
            return None
        if isinstance(value, bool) or value not in choices:
            self.errors[name] = [f'"{value}" is not a valid choice.']
            return None
        return value

    def mapping(self, name: str, *, required: bool = False) -> dict[str, object] | None:
        value = self._get(name, required, True)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.errors[name] = [f'Expected a dictionary of items but got type "{_kind(value)}".']
            return None
        return value

    def _list(self, name: str, required: bool) -> list[object] | None:
        value = self._get(name, required, False)
        if value is None:
            return None
        if not isinstance(value, list):
            self.errors[name] = [f'Expected a list of items but got type "{_kind(value)}".']
            return None
        return value

    def strings(self, name: str, *, required: bool = False) -> list[str] | None:
        items = self._list(name, required)
        if items is None:
            return None
        if not all(isinstance(item, str) for item in items):
            self.errors[name] = ["Not a valid string."]
            return None
        return [item for item in items if isinstance(item, str)]

    def choices(
        self, name: str, allowed: Container[object], *, required: bool = False
    ) -> list[str] | None:
        values = self.strings(name, required=required)
        if values is None:
            return None
        wrong = [value for value in values if value not in allowed]
        if wrong:
            self.errors[name] = [f'"{value}" is not a valid choice.' for value in wrong]
            return None
        return values

    def objects(
        self, name: str, read: Callable[[Fields], T], *, required: bool = False
    ) -> list[T] | None:
        """A list of objects, each read by ``read``; errors come back one entry per item."""
        items = self._list(name, required)
        if items is None:
            return None
        results: list[T] = []
        item_errors: list[object] = []
        for item in items:
            try:
                fields = Fields(item)
                result = read(fields)
                fields.done()
            except Invalid as exc:
                item_errors.append(exc.errors)
            else:
                item_errors.append({})
                results.append(result)
        if any(item_errors):
            self.errors[name] = item_errors
            return None
        return results

    def done(self) -> None:
        """Raise every error noted so far."""
        if self.errors:
            raise Invalid(self.errors)


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter between ``low`` and ``high``, or Invalid naming it."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid({name: ["A valid integer is required."]}) from None
    if value < low:
        raise Invalid({name: [f"Ensure this value is greater than or equal to {low}."]})
    if value > high:
        raise Invalid({name: [f"Ensure this value is less than or equal to {high}."]})
    return value
