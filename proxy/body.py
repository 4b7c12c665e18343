"""Request bodies the proxy can send more than once.

A request that meets a 401 is replayed after the refresh, body included, so the body has to be
kept. We read it completely *before* sending anything upstream, rather than copying it while
sending, because:

- the size limit (413 ``body_too_large``) is decided before PandaDoc sees a byte, so an over-size
  upload never leaves a half-sent request upstream;
- a replay always has the whole body, even when PandaDoc answered 401 before reading it all;
- the body goes upstream with an exact ``Content-Length`` instead of chunked framing.

The cost is latency for large uploads (the upload to PandaDoc starts when the client's upload
ends), which is small next to PandaDoc's own processing of a PDF. Memory stays bounded: up to
``limits.memory_body_bytes`` are kept in memory, anything larger is spooled to a temporary file.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from aiohttp import web

from .errors import BodyTooLarge, RequestTimeout
from .exchange import ClientAborted, forget_traceback

__all__ = ["RequestBody", "read_body"]

_CHUNK = 256 * 1024


class RequestBody:
    """A fully received request body: bytes in memory, or a temporary file for large ones."""

    def __init__(self, data: bytes | None = None, spool: IO[bytes] | None = None, size: int = 0):
        self._data = data
        self._spool = spool
        self.size = size if spool is not None else len(data or b"")

    @property
    def empty(self) -> bool:
        return self.size == 0

    def payload(self) -> bytes | AsyncIterator[bytes]:
        """Something aiohttp's client can send; call again for each attempt."""
        if self._spool is None:
            return self._data or b""
        return self._read_spool(self._spool)

    @staticmethod
    async def _read_spool(spool: IO[bytes]) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, spool.seek, 0)
        while chunk := await loop.run_in_executor(None, spool.read, _CHUNK):
            yield chunk

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


#: The body of every request that has none (most of them): shared, as nothing changes it.
EMPTY_BODY = RequestBody(b"")


async def read_body(
    request: web.Request, *, max_bytes: int, memory_bytes: int, idle_timeout_s: float
) -> RequestBody:
    """Receive the whole body of ``request``, refusing more than ``max_bytes`` with 413, and a
    sender that goes quiet for ``idle_timeout_s`` with 408.

    ``request.content`` has no size limit of its own (``client_max_size`` only guards
    ``read()``/``post()``), so bytes are counted here. The idle deadline also ends the wait
    when aiohttp's parser drops a broken chunk that arrives after the headers (it stops
    feeding the body without failing it). A client that goes away mid-body raises
    :class:`~.exchange.ClientAborted`.
    """
    if not request.body_exists:
        return EMPTY_BODY
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLarge(f"The request body is larger than {max_bytes} bytes.")

    buffer = bytearray()
    spool: IO[bytes] | None = None
    size = 0
    loop = asyncio.get_running_loop()
    try:
        try:
            while chunk := await _next_chunk(request, idle_timeout_s):
                size += len(chunk)
                if size > max_bytes:
                    raise BodyTooLarge(f"The request body is larger than {max_bytes} bytes.")
                if spool is None and size <= memory_bytes:
                    buffer += chunk
                    continue
                if spool is None:
                    # Owned by the RequestBody from here on; it closes the file (and so
                    # deletes it).
                    spool = tempfile.TemporaryFile(prefix="pandadoc-proxy-body-")  # noqa: SIM115
                    await loop.run_in_executor(None, spool.write, bytes(buffer))
                    buffer.clear()
                await loop.run_in_executor(None, spool.write, chunk)
        except ConnectionError as lost:
            # The client closed or reset its connection mid-body: nothing is forwarded.
            forget_traceback(lost)
            raise ClientAborted("upload") from None
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if spool is None:
        return RequestBody(bytes(buffer))
    await loop.run_in_executor(None, spool.flush)
    return RequestBody(spool=spool, size=size)


async def _next_chunk(request: web.Request, idle_timeout_s: float) -> bytes:
    try:
        async with asyncio.timeout(idle_timeout_s):
            return await request.content.read(_CHUNK)
    except TimeoutError:
        raise RequestTimeout(
            f"No part of the request body arrived for {idle_timeout_s:g} seconds."
        ) from None
