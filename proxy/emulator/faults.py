"""Faults on demand: latency, error statuses, connection resets and 429s, per route.

A fault rule names the requests it hits and what happens to them:

- ``match``: ``*`` (every request), one of PandaDoc's operationIds (``sendDocument``), or
  ``METHOD PATH-GLOB`` (``POST /public/v1/documents/*/send``; ``*`` matches one path
  segment, ``**`` any number, the method may be ``*``): the syntax of the proxy's own rate
  limit rules.
- ``kind``: ``latency`` (wait ``value`` seconds, then answer as usual), ``status`` (answer
  ``value``, e.g. 503, with a PandaDoc-shaped body), ``reset`` (drop the connection with a
  TCP reset, before any answer), ``throttle`` (answer PandaDoc's 429, as the rate limiter
  does; ``value`` is the seconds it names).
- ``times``: how many requests it hits before it is used up (unset: until removed).

Rules are checked in order and the first that matches applies. They come from the
settings (``faults``), ``POST /_emulator/faults`` or ``--fault`` on the command line, where
a rule is written ``match=POST /public/v1/documents/*/send,kind=status,value=503,times=2``.
"""

from __future__ import annotations

import functools
import math
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

__all__ = ["KINDS", "Fault", "FaultError", "parse_fault", "reset_connection", "take_fault"]

KINDS = ("latency", "status", "reset", "throttle")


class FaultError(ValueError):
    """A fault rule that does not parse; the message names what is wrong."""


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            parts.append(".*")
        else:
            parts.append("[^/]*".join(re.escape(piece) for piece in segment.split("*")))
    return re.compile("/" + "/".join(parts) + "/?")


def _check_match(match: str) -> None:
    if match == "*" or re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", match):
        return
    method, _, path = match.partition(" ")
    if not path.startswith("/") or not re.fullmatch(r"\*|[A-Z]+", method):
        raise FaultError(
            f"match {match!r} must be *, an operationId, or METHOD /path (e.g. GET /public/**)"
        )


@dataclass
class Fault:
    """One fault rule; see the module docstring."""

    match: str
    kind: str
    value: float | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        _check_match(self.match)
        if self.kind not in KINDS:
            raise FaultError(f"kind {self.kind!r} must be one of {', '.join(KINDS)}")
        value = self.value
        if value is not None and (not math.isfinite(value) or value < 0):
            raise FaultError("value must be a non-negative number")
        if self.kind == "latency" and value is None:
            raise FaultError("a latency fault needs value (seconds)")
        if self.kind == "status" and (value is None or not 400 <= value <= 599 or value % 1):
            raise FaultError("a status fault needs value, an error status (400-599)")
        if self.times is not None and self.times < 1:
            raise FaultError("times must be at least 1")

    def matches(self, method: str, path: str, operation: str | None) -> bool:
        if self.match == "*":
            return True
        if " " not in self.match:
            return self.match == operation
        want_method, _, glob = self.match.partition(" ")
        if want_method not in ("*", method):
            return False
        return _glob(glob).fullmatch(path) is not None

    def as_json(self) -> dict[str, object]:
        return {"match": self.match, "kind": self.kind, "value": self.value, "times": self.times}

    @classmethod
    def from_json(cls, data: object) -> Fault:
        if not isinstance(data, Mapping):
            raise FaultError("a fault must be an object with match and kind")
        unknown = sorted(set(data) - {"match", "kind", "value", "times"})
        if unknown:
            raise FaultError(f"unknown fault field(s): {', '.join(unknown)}")
        match, kind = data.get("match"), data.get("kind")
        value, times = data.get("value"), data.get("times")
        if not isinstance(match, str) or not isinstance(kind, str):
            raise FaultError("a fault needs match and kind, both strings")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise FaultError("value must be a number")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise FaultError("times must be an integer")
        return cls(match, kind, None if value is None else float(value), times)


def parse_fault(text: str) -> Fault:
    """A rule written ``match=...,kind=...[,value=...][,times=...]`` (the ``--fault`` flag)."""
    fields: dict[str, object] = {}
    for item in text.split(","):
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FaultError(f"{item!r} is not NAME=VALUE")
        if name in ("value", "times"):
            try:
                fields[name] = float(raw) if name == "value" else int(raw)
            except ValueError:
                raise FaultError(f"{name} must be a number, not {raw!r}") from None
        else:
            fields[name] = raw.strip()
    return Fault.from_json(fields)


def take_fault(faults: list[Fault], method: str, path: str, operation: str | None) -> Fault | None:
    """The first rule that hits this request; a rule's last use removes it from ``faults``."""
    for index, fault in enumerate(faults):
        if fault.matches(method, path, operation):
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    del faults[index]
            return fault
    return None


def reset_connection(request: web.Request) -> None:
    """Drop the client's connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")  # asyncio's TransportSocket, or uvloop's
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
