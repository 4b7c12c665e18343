"""Request bodies within PandaDoc's limits: 2 MB of JSON, a PDF of up to 50 MB.

PandaDoc documents both limits ("Limits": the maximum request body size is 2 MB; a PDF
uploaded to create a document may be up to 50 MB, beyond which the API answers 413).
aiohttp's own limit (``client_max_size``, 1 MiB) applies only to ``read()`` and ``post()``
and answers in plain text, so the API routes read their bodies here instead: counted
while they stream in, refused with PandaDoc-shaped JSON as soon as they cross the limit,
and never held in memory beyond it. An uploaded file is hashed, not kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from .errors import ApiError, payload_too_large, request_error
from .validation import REQUIRED, Invalid

__all__ = ["JSON_LIMIT", "PDF_LIMIT", "Upload", "read_json", "read_upload"]

JSON_LIMIT = 2 * 1024 * 1024
PDF_LIMIT = 50 * 1024 * 1024
#: Room for the multipart framing and the "data" part next to a file at the PDF limit.
_MULTIPART_SLACK = JSON_LIMIT + 64 * 1024
_CHUNK = 64 * 1024

_PARSED_JSON: web.RequestKey[object] = web.RequestKey("emulator_parsed_json", object)


def _refuse_declared(request: web.Request, limit: int, what: str) -> None:
    """Answer 413 at once when the declared length is already over the limit."""
    length = request.content_length
    if length is not None and length > limit:
        raise payload_too_large(limit, what)


def parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise request_error(f"JSON parse error - {exc}") from None


async def read_json(request: web.Request) -> object:
    """The JSON body (at most 2 MB), parsed; read once, so a second call is free."""
    if _PARSED_JSON in request:
        return request[_PARSED_JSON]
    if request.content_type != "application/json":
        detail = f'Unsupported media type "{request.content_type}" in request.'
        raise ApiError(415, "request_error", detail)
    _refuse_declared(request, JSON_LIMIT, "a JSON body")
    raw = bytearray()
    while chunk := await request.content.read(_CHUNK):
        raw += chunk
        if len(raw) > JSON_LIMIT:
            raise payload_too_large(JSON_LIMIT, "a JSON body")
    data = parse_json(bytes(raw)) if raw else None
    request[_PARSED_JSON] = data
    return data


@dataclass(frozen=True)
class Upload:
    """A ``multipart/form-data`` upload: its ``data`` part parsed, its ``file`` part hashed."""

    data: object
    file_name: str | None
    file_sha256: str
    file_size: int


async def _read_part(part: BodyPartReader, limit: int, what: str) -> tuple[str, int, bytes]:
    """SHA-256, length, and (for small parts) the bytes of one part, within ``limit``."""
    digest, length, kept = hashlib.sha256(), 0, bytearray()
    keep = limit <= JSON_LIMIT
    while chunk := await part.read_chunk(_CHUNK):
        length += len(chunk)
        if length > limit:
            raise payload_too_large(limit, what)
        digest.update(chunk)
        if keep:
            kept += chunk
    return digest.hexdigest(), length, bytes(kept)


async def read_upload(request: web.Request) -> Upload:
    """Stream a PDF upload: the ``file`` part up to 50 MB, the ``data`` part up to 2 MB."""
    _refuse_declared(request, PDF_LIMIT + _MULTIPART_SLACK, "an upload")
    try:
        reader = await request.multipart()
        data: object = {}
        file: tuple[str | None, str, int] | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise request_error("Nested multipart bodies are not supported.")
            if part.name == "file":
                sha256, size, _ = await _read_part(part, PDF_LIMIT, "an uploaded PDF")
                file = (part.filename, sha256, size)
            elif part.name == "data":
                _, _, raw = await _read_part(part, JSON_LIMIT, "the data part")
                data = parse_json(raw)
            else:
                await part.release()
    except ValueError as exc:  # a malformed multipart body
        raise request_error(f"Multipart form parse error - {exc}") from None
    if file is None:
        raise Invalid({"file": [REQUIRED]})
    if file[2] == 0:
        raise Invalid({"file": ["The submitted file is empty."]})
    return Upload(data=data, file_name=file[0], file_sha256=file[1], file_size=file[2])
