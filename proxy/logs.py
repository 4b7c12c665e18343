"""Log set-up: JSON lines for production, readable lines for a terminal, and the access log.

Structured fields travel in ``extra={...}`` (``event``, ``code``, ``detail`` ...), so both
formats show the same facts. Callers never pass tokens (they log names and classes of errors,
never request headers or token-endpoint bodies); as a last line of defence, every finished line,
traceback included, goes through :func:`redact` before it is written: the configured secrets,
every token the process has held, and anything shaped like a credential are masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import deque
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .config import LoggingConfig
from .keys import REPLAYED, REPLICA_ID, REQUEST_ID, STARTED, UPSTREAM_SECONDS

__all__ = ["AccessLogger", "configure_logging", "redact", "remember_secret"]

ACCESS_LOGGER = "pandadoc_proxy.access"

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info and record.exc_info[0] is not None:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


_MASK = "[redacted]"
# Each shape is (what stays)(what is masked).
_CREDENTIAL_SHAPES = (
    # Authorization header values.
    re.compile(r"(?i)(\b(?:bearer|api-key|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"),
    # Form fields and query parameters.
    re.compile(
        r"(?i)(\b(?:access_token|refresh_token|client_secret|code|password|api_key)=)"
        r"[^&\s\"',;]+"
    ),
    # JSON fields.
    re.compile(
        r'(?i)("(?:access_token|refresh_token|client_secret|code|password|api_key)"\s*:\s*")'
        r'[^"]*'
    ),
    # Passwords in URLs (redis://:secret@host).
    re.compile(r"(://[^/\s:@]*:)[^/\s@]+(?=@)"),
)
#: Exact values never to be written: the configured secrets and the tokens held recently.
_known_secrets: deque[str] = deque(maxlen=64)
#: One pattern for all of them, rebuilt when the set changes (one scan per line, not 64).
_known_pattern: re.Pattern[str] | None = None
#: A cheap first look: a line without any of these words needs none of the shapes above.
_SUSPECT = re.compile(r"(?i)bearer|api-key|basic|token|secret|code|password|api_key|://")


def remember_secret(*values: str) -> None:
    """Mask ``values`` in every log line from now on (tokens, when the process adopts them)."""
    global _known_pattern
    added = False
    for value in values:
        if value and len(value) >= 6 and value not in _known_secrets:
            _known_secrets.append(value)
            added = True
    if added:
        longest_first = sorted(_known_secrets, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(secret) for secret in longest_first))


def redact(text: str) -> str:
    if _known_pattern is not None:
        text = _known_pattern.sub(_MASK, text)
    if _SUSPECT.search(text):
        for shape in _CREDENTIAL_SHAPES:
            text = shape.sub(lambda m: f"{m.group(1)}{_MASK}", text)
    return text


class _Redacting(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


def configure_logging(config: LoggingConfig, secrets: tuple[str, ...] = ()) -> None:
    remember_secret(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    inner = JsonFormatter() if config.format == "json" else TextFormatter()
    handler.setFormatter(_Redacting(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # aiohttp's own access logger would log the query string and the client's headers.
    logging.getLogger("aiohttp.access").disabled = True


class AccessLogger(AbstractAccessLogger):
    """One line per request: id, method, path without the query string, status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "event": "access",
                "request_id": request.get(REQUEST_ID, ""),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                # Our own clock when we have it: aiohttp measures with the loop's, which under
                # uvloop ticks in whole milliseconds.
                "duration_ms": round(
                    (perf_counter() - request[STARTED] if STARTED in request else time) * 1000,
                    2,
                ),
                "upstream_ms": round(request.get(UPSTREAM_SECONDS, 0.0) * 1000, 2),
                "replayed": request.get(REPLAYED, False),
                # .get: the emulator's app, served the same way, has no replica id.
                "replica": request.app.get(REPLICA_ID, "")
                if isinstance(request, web.Request)
                else "",
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
