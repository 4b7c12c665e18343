"""Log set-up: JSON lines for production, readable lines for a terminal, and the access log.

Structured fields travel in ``extra={...}`` (``event``, ``code``, ``detail`` ...), so both
formats show the same facts. Callers never pass tokens (they log names and classes of errors,
never request headers or token-endpoint bodies); as a last line of defence, every finished line,
traceback included, goes through :func:`redact` before it is written: the configured secrets,
every token the process has held, and anything shaped like a credential are masked (except
the proxy's own error codes, which a ``code`` field also carries).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .config import LoggingConfig
from .errors import ProxyError
from .exchange import EXCHANGE, Abort, Exchange
from .log_writer import LineWriter

__all__ = ["AccessLogger", "configure_logging", "redact", "remember_secret"]

ACCESS_LOGGER = "pandadoc_proxy.access"

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


_stamp_millisecond = -1
_stamp = ""


def _utc_stamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds, computed once per millisecond: under load, several
    lines share one."""
    global _stamp_millisecond, _stamp
    millisecond = int(created * 1000)
    if millisecond != _stamp_millisecond:
        second, milli = divmod(millisecond, 1000)
        _stamp = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{milli:03d}Z"
        _stamp_millisecond = millisecond
    return _stamp


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, Any],
    exception: str | None = None,
) -> str:
    entry: dict[str, Any] = {
        "ts": _utc_stamp(created),
        "level": level,
        "logger": logger,
        "message": message,
        **fields,
    }
    if exception:
        entry["exception"] = exception
    return _json(entry)


def _json(value: Any) -> str:
    """``value`` as JSON: by orjson, or, for text orjson refuses (a lone surrogate, from
    undecodable bytes), by the standard library, which escapes it."""
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str)


def text_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, Any],
    exception: str | None = None,
) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(created))
    line = f"{stamp} {level.upper():<7} {message}"
    if fields:
        line = line + "  " + " ".join(f"{k}={v}" for k, v in fields.items())
    if exception:
        line = f"{line}\n{exception}"
    return line


class _LineFormatter(logging.Formatter):
    """A ``logging`` formatter over one of the line functions above, redacting the result."""

    def __init__(self, line: Callable[..., str]) -> None:
        super().__init__()
        self._line = line

    def format(self, record: logging.LogRecord) -> str:
        exception = None
        if record.exc_info and record.exc_info[0] is not None:
            exception = self.formatException(record.exc_info)
        return redact(
            self._line(
                record.created,
                record.levelname.lower(),
                record.name,
                record.getMessage(),
                _extras(record),
                exception,
            )
        )


_MASK = "[redacted]"
# Each shape is (what stays)(what is masked).
_CREDENTIAL_SHAPES = (
    # Authorization header values.
    re.compile(r"(?i)(\b(?:bearer|api-key|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"),
    # Form fields and query parameters (a backslash ends one: it escapes a JSON line's quote).
    re.compile(
        r"(?i)(\b(?:access_token|refresh_token|client_secret|password|api_key)=)[^&\s\"'\\,;]+"
    ),
    # JSON fields, also inside a JSON string of a JSON line (quotes escaped as \").
    re.compile(
        r'(?i)(\\?"(?:access_token|refresh_token|client_secret|password|api_key)\\?"\s*:\s*\\?")'
        r'[^"\\]*'
    ),
    # Passwords in URLs (redis://:secret@host).
    re.compile(r"(://[^/\s:@]*:)[^/\s@]+(?=@)"),
)
# "code" is two things: an OAuth authorization code (a secret: whoever has it can connect the
# proxy to their own PandaDoc account until it is used) and the proxy's own error code in its
# log lines ("code":"upstream_unreachable"), which says what went wrong. Each shape is
# (what stays)(the value); the value stays only if it is one of the proxy's error codes, a
# small known set, where an authorization code is long and random.
_CODE_SHAPES = (
    re.compile(r"(?i)(\bcode=)([^&\s\"'\\,;]+)"),
    re.compile(r'(?i)(\\?"code\\?"\s*:\s*\\?")([^"\\]*)'),
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
        _redact_path.cache_clear()


def redact(text: str) -> str:
    if _known_pattern is not None:
        text = _known_pattern.sub(_MASK, text)
    if _SUSPECT.search(text):
        for shape in _CREDENTIAL_SHAPES:
            text = shape.sub(_mask_value, text)
        for shape in _CODE_SHAPES:
            text = shape.sub(_mask_unless_error_code, text)
    return text


def _mask_value(match: re.Match[str]) -> str:
    return f"{match.group(1)}{_MASK}"


def _mask_unless_error_code(match: re.Match[str]) -> str:
    return match.group(0) if _is_error_code(match.group(2)) else f"{match.group(1)}{_MASK}"


def _is_error_code(value: str) -> bool:
    """Whether ``value`` is the code of one of the proxy's errors (contract section 6).

    Looked up in the error classes each time, so that a new one is readable at once: it runs
    only for lines that have a ``code``, and the classes are a dozen.
    """
    classes: list[type[ProxyError]] = [ProxyError]
    while classes:
        error_class = classes.pop()
        if error_class.code == value:
            return True
        classes.extend(error_class.__subclasses__())
    return False


@functools.lru_cache(maxsize=4096)
def _redact_path(path: str) -> str:
    """``redact()`` for access-log paths, which repeat: the same few endpoints over and over.
    Emptied whenever the set of secrets changes."""
    return redact(path)


class _WriterHandler(logging.Handler):
    """Hands finished lines to the :class:`LineWriter` instead of writing them itself."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write(self.format(record))
        except Exception:
            self.handleError(record)


AccessSink = Callable[[str, str, int, Exchange, str], None]


def _access_through_logging(
    method: str, path: str, status: int, exchange: Exchange, replica: str
) -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.isEnabledFor(logging.INFO):
        fields = access_fields(method, path, status, exchange, replica)
        logger.info(f"{method} {path} {status}", extra=fields)


#: Where access lines go: through ``logging`` until configure_logging installs its short cut
#: (or None, with ``logging.access_log: false``).
_access_sink: AccessSink | None = _access_through_logging


def configure_logging(config: LoggingConfig, secrets: tuple[str, ...] = ()) -> None:
    """Send every log line, redacted, to stderr through a :class:`LineWriter` (off the loop)."""
    global _access_sink
    remember_secret(*secrets)
    line = json_line if config.format == "json" else text_line

    def drop_notice(dropped: int) -> str:
        message = f"{dropped} log lines were dropped: the log output was blocked"
        fields = {"event": "log_lines_dropped", "dropped": dropped}
        return line(time.time(), "warning", "pandadoc_proxy.logs", message, fields)

    writer = LineWriter(sys.stderr, drop_notice=drop_notice)
    handler = _WriterHandler(writer)
    handler.setFormatter(_LineFormatter(line))
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, _WriterHandler):
            old._writer.close()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # aiohttp's own access logger would log the query string and the client's headers.
    logging.getLogger("aiohttp.access").disabled = True

    def json_access(method: str, path: str, status: int, exchange: Exchange, replica: str) -> None:
        writer.write(json_access_line(time.time(), method, path, status, exchange, replica))

    def text_access(method: str, path: str, status: int, exchange: Exchange, replica: str) -> None:
        fields = access_fields(method, _redact_path(path), status, exchange, replica)
        message = f"{method} {fields['path']} {status}"
        writer.write(text_line(time.time(), "info", ACCESS_LOGGER, message, fields))

    access_on = config.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    sink = json_access if config.format == "json" else text_access
    _access_sink = sink if access_on else None


def log_access(method: str, path: str, status: int, exchange: Exchange, replica: str) -> None:
    """Write the access line of one finished request.

    Called by the request middleware, which holds every fact at hand. Under ``serve`` the line
    is built and queued directly (``_access_sink``): a ``LogRecord``, the logger hierarchy and
    the formatter's generic field handling cost more than the rest of the line, once per
    request. Elsewhere (tests, embedding) it goes through ``logging``.
    """
    sink = _access_sink
    if sink is not None:
        sink(method, path, status, exchange, replica)


def access_fields(
    method: str, path: str, status: int, exchange: Exchange, replica: str
) -> dict[str, Any]:
    """The fields of an access line (``json_access_line`` writes the same ones by hand)."""
    fields: dict[str, Any] = {
        "event": "access",
        "request_id": exchange.request_id,
        "method": method,
        "path": path,
        "status": status,
        # Our own clock: uvloop's ticks in whole milliseconds.
        "duration_ms": round((perf_counter() - exchange.started) * 1000, 2),
        "upstream_ms": round(exchange.upstream_seconds * 1000, 2),
        "replayed": exchange.replayed,
        "replica": replica,
    }
    abort = exchange.abort
    if abort is not None:
        fields["aborted"] = abort.phase
        fields["bytes_received"] = abort.bytes_received
        fields["bytes_sent"] = abort.bytes_sent
    return fields


def json_access_line(
    created: float, method: str, path: str, status: int, exchange: Exchange, replica: str
) -> str:
    """``json_line()`` of ``access_fields()``, written out by hand: the same JSON document (a
    test says so) at a fraction of the cost, which matters once per request.

    Only the path comes from the client, so only the path needs redacting and escaping (both
    cached, as paths repeat); the method is an HTTP token (aiohttp's parser refuses others),
    the request id matches ``middleware._CLIENT_REQUEST_ID`` or is the proxy's own hex, and
    the replica id is escaped too (cached: one per process). The fields of an aborted
    request (:class:`~.exchange.Abort`) are a phase name and two integers.
    """
    path = _escaped(_redact_path(path))
    return (
        f'{{"ts":"{_utc_stamp(created)}","level":"info","logger":"{ACCESS_LOGGER}",'
        f'"message":"{method} {path} {status}","event":"access",'
        f'"request_id":"{exchange.request_id}","method":"{method}","path":"{path}",'
        f'"status":{status},"duration_ms":{(perf_counter() - exchange.started) * 1000:.2f},'
        f'"upstream_ms":{exchange.upstream_seconds * 1000:.2f},'
        f'"replayed":{"true" if exchange.replayed else "false"},'
        f'"replica":"{_escaped(replica)}"'
        f"{'}' if exchange.abort is None else _abort_fields(exchange.abort)}"
    )


def _abort_fields(abort: Abort) -> str:
    """The end of the access line of a request whose client left (rare: not inlined)."""
    return (
        f',"aborted":"{abort.phase}","bytes_received":{abort.bytes_received},'
        f'"bytes_sent":{abort.bytes_sent}}}'
    )


@functools.lru_cache(maxsize=4096)
def _escaped(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return _json(text)[1:-1]


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook, for apps without the proxy's request middleware (the
    emulator's): one line per request, as the proxy writes its own."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if EXCHANGE in request:
            return  # The request middleware has written this request's line already.
        exchange = Exchange("", perf_counter() - time)
        log_access(request.method, request.path, response.status, exchange, "")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
