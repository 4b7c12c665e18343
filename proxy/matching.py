"""Request patterns: ``"POST /public/v1/documents/*/send"``, as rate-limit rules and app
policies write them.

A pattern is a method (or ``*`` for any) and a path glob over the request's path
(percent-decoded, without the query):
``*`` stands for exactly one path segment (no ``/``), ``**`` for any number of them (also none),
anything else for itself. ``/public/v1/documents/*`` matches ``/public/v1/documents/abc`` but
not ``/public/v1/documents/abc/details``; ``/public/v1/documents/**`` matches both, and
``/public/v1/documents`` itself.

A :class:`PatternList` answers "which is the first pattern that matches?" with one regular
expression match per request, however many patterns it holds, so checking a list of rules
costs the hot path one C call rather than a loop in Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PatternList", "RequestPattern"]

#: The methods a pattern may name (RFC 9110's, and PATCH); ``*`` is any.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@%-]*")


@dataclass(frozen=True, slots=True)
class RequestPattern:
    """One ``METHOD PATH-GLOB``; :meth:`parse` says what is wrong with a malformed one."""

    method: str
    glob: str

    @classmethod
    def parse(cls, text: str) -> RequestPattern:
        """``"GET /public/v1/documents/**"``; raises ValueError naming the problem."""
        method, _, glob = text.strip().partition(" ")
        glob = glob.strip()
        if not glob:
            raise ValueError(
                f"{text!r} is not METHOD PATH (e.g. 'GET /public/v1/documents/**'; '*' for "
                "any method)"
            )
        method = method.upper()
        if method != "*" and method not in _METHODS:
            raise ValueError(f"{text!r}: {method!r} is not an HTTP method or '*'")
        if not glob.startswith("/"):
            raise ValueError(f"{text!r}: the path must start with '/'")
        for segment in glob.split("/")[1:]:
            if segment in ("*", "**"):
                continue
            if "*" in segment:
                raise ValueError(f"{text!r}: '*' and '**' stand for whole segments only")
            if not _SEGMENT.fullmatch(segment):
                raise ValueError(f"{text!r}: {segment!r} is not a path segment")
        return cls(method, glob)

    def __str__(self) -> str:
        return f"{self.method} {self.glob}"

    def regex(self) -> str:
        """This pattern as a regular expression over ``"METHOD PATH"``."""
        method = r"[A-Z]+" if self.method == "*" else re.escape(self.method)
        path = ""
        for segment in self.glob.split("/")[1:]:
            if segment == "**":
                # Any number of segments, also none: "/a/**" matches "/a" and "/a/b/c".
                path += r"(?:/[^/]*)*"
            elif segment == "*":
                path += r"/[^/]+"
            else:
                path += "/" + re.escape(segment)
        return f"{method} {path or '/'}"

    def matches(self, method: str, path: str) -> bool:
        return re.fullmatch(self.regex(), f"{method} {path}") is not None


class PatternList:
    """Patterns in order; :meth:`first` is the index of the first that matches, or None."""

    def __init__(self, patterns: Sequence[RequestPattern]) -> None:
        self.patterns = tuple(patterns)
        alternatives = "|".join(
            f"(?P<p{index}>{pattern.regex()})" for index, pattern in enumerate(self.patterns)
        )
        # An alternation tries its branches left to right: the first pattern that matches the
        # whole "METHOD PATH" wins, as the rules' order says.
        self._regex = re.compile(f"(?:{alternatives})\\Z") if self.patterns else None

    def first(self, method: str, path: str) -> int | None:
        if self._regex is None:
            return None
        match = self._regex.match(f"{method} {path}")
        if match is None or match.lastgroup is None:
            return None
        return int(match.lastgroup[1:])

    def __len__(self) -> int:
        return len(self.patterns)
