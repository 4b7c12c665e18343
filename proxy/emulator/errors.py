"""PandaDoc's error answers: raised anywhere in the emulator, rendered in one place.

PandaDoc's v1 API is a Django REST framework service and answers errors as
``{"type": ..., "detail": ...}``, where ``detail`` is a sentence or, for a request whose
fields are wrong, an object naming each field (``{"name": ["This field is required."]}``).
Its newer ``/public/v2`` routes answer ``{"code": ..., "details": [...]}`` instead; the
same error raised under ``/public/v2/`` is rendered in that shape. The shapes follow the
error responses of PandaDoc's published OpenAPI specification.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

__all__ = [
    "ApiError",
    "conflict",
    "not_found",
    "payload_too_large",
    "permissions_error",
    "render_errors",
    "request_error",
    "throttled",
]

logger = logging.getLogger("proxy.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The v2 ``code`` of each status (PandaDoc's 400BadRequestV2, 401AuthErrorV2, ... responses).
_V2_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error answer: ``status``, PandaDoc's error ``type`` and ``detail``.

    ``body`` replaces the whole v1 body where PandaDoc answers with another shape (the 409
    for a document still being processed carries the document's id and status instead).
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        detail: object,
        *,
        headers: Mapping[str, str] | None = None,
        body: dict[str, object] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_type}: {detail}")
        self.status = status
        self.error_type = error_type
        self.detail = detail
        self.headers = dict(headers or {})
        self.body = body

    def _v2_details(self) -> list[dict[str, object]]:
        """Field errors as v2 ``details`` items: a code, a JSON pointer and the messages."""
        if not isinstance(self.detail, dict):
            return []
        return [
            {"code": "invalid", "pointer": f"/{name}", "data": {"messages": messages}}
            for name, messages in self.detail.items()
        ]

    def response(self, path: str) -> web.Response:
        """The answer for a request to ``path`` (the v2 shape under ``/public/v2/``)."""
        body: dict[str, object]
        if path.startswith("/public/v2/"):
            code = _V2_CODES.get(self.status, self.error_type)
            body = {"code": code, "details": self._v2_details()}
        elif self.body is not None:
            body = self.body
        else:
            body = {"type": self.error_type, "detail": self.detail}
        return web.json_response(body, status=self.status, headers=self.headers)


def request_error(detail: object, status: int = 400) -> ApiError:
    """400 ``request_error``: a malformed request (bad JSON, a bad query parameter)."""
    return ApiError(status, "request_error", detail)


def not_found() -> ApiError:
    """404 for an id that names nothing, and for every route the emulator does not serve."""
    return ApiError(404, "not_found", "Not found.")


def permissions_error() -> ApiError:
    """403, as PandaDoc answers an action the credentials may not take (DRF's wording)."""
    return ApiError(403, "permissions_error", "You do not have permission to perform this action.")


def conflict(document_id: str, status: str, info_message: str) -> ApiError:
    """409: PandaDoc's answer for a document that is not in a state for this action yet."""
    body: dict[str, object] = {"id": document_id, "status": status, "info_message": info_message}
    return ApiError(409, "conflict", info_message, body=body)


def payload_too_large(limit_bytes: int, what: str) -> ApiError:
    """413 for a body over PandaDoc's limits (2 MB of JSON, a 50 MB PDF)."""
    megabytes = limit_bytes // (1024 * 1024)
    detail = f"Request entity too large: {what} may be at most {megabytes} MB."
    return ApiError(413, "request_error", detail)


def throttled(detail: str, retry_after_s: int | None) -> ApiError:
    """429 ``throttled``; ``Retry-After`` only when asked for (PandaDoc's spec declares none)."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return ApiError(429, "throttled", detail, headers=headers)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ApiError, and aiohttp's own 404, 405 and 413, as PandaDoc-shaped JSON.

    aiohttp's router answers an unknown route with a plain-text "404: Not Found", which no
    PandaDoc client can parse; here it becomes PandaDoc's JSON 404 like any other.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response(request.path)
    except web.HTTPNotFound:
        return not_found().response(request.path)
    except web.HTTPMethodNotAllowed as exc:
        detail = f'Method "{request.method}" not allowed.'
        allow = {"Allow": ",".join(sorted(exc.allowed_methods))}
        return ApiError(405, "request_error", detail, headers=allow).response(request.path)
    except web.HTTPRequestEntityTooLarge as exc:
        return ApiError(413, "request_error", exc.text).response(request.path)
    except web.HTTPException:
        raise  # redirects and the like, answered as they are
    except Exception:
        # A bug in the emulator: logged with its traceback, answered as PandaDoc's 500.
        logger.exception("emulator error on %s %s", request.method, request.path)
        detail = "A server error occurred."
        return ApiError(500, "server_error", detail).response(request.path)
