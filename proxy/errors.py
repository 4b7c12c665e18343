"""The errors the proxy itself answers with (contract section 6).

Every error is a :class:`ProxyError` subclass that knows its status, its contract code and the
headers its answer carries. Code anywhere below a handler raises one; ``responses.py`` renders
it, in one place, as the JSON body ``{"error": CODE, "message": TEXT}`` with the
``X-Proxy-Error: CODE`` header, so a client can tell the proxy's own answers from PandaDoc's.
Messages are written for people and never carry a token or a secret.

A leaf module: it imports nothing of the proxy's, so any layer may raise these.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AdminAuthenticationRequired",
    "AuthorizationRequired",
    "BadRequest",
    "BodyTooLarge",
    "ExpectationFailed",
    "Forbidden",
    "HTTPRefusal",
    "NotFound",
    "Overloaded",
    "ProxyError",
    "RefreshCeilingReached",
    "RefreshFailed",
    "RequestTimeout",
    "TokenStoreUnavailable",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class ProxyError(Exception):
    """An answer the proxy gives on its own behalf instead of PandaDoc's."""

    status: int = 500
    code: str = "internal_error"
    #: Close the client's connection after the answer (its request was not read to the end).
    close_connection: bool = False
    default_message: str = "The proxy failed to handle the request."
    #: Headers every answer of this kind carries besides the JSON body (a challenge, say).
    answer_headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        #: This answer's headers: the kind's, and any this one adds (a Retry-After, say).
        self.headers: dict[str, str] = dict(self.answer_headers)
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadRequest(ProxyError):
    status = 400
    code = "bad_request"
    default_message = "The proxy refuses to forward this request."


class AdminAuthenticationRequired(ProxyError):
    status = 401
    code = "admin_authentication_required"
    default_message = "The proxy's admin pages need the admin username and password."
    answer_headers = {"WWW-Authenticate": 'Basic realm="pandadoc-proxy admin", charset="UTF-8"'}


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"
    default_message = (
        "The proxy's admin pages answer only local requests unless admin.password is set."
    )


class NotFound(ProxyError):
    status = 404
    code = "not_found"
    default_message = "The proxy has no such route."


class RequestTimeout(ProxyError):
    status = 408
    code = "request_timeout"
    default_message = "The request body stopped arriving."
    close_connection = True


class BodyTooLarge(ProxyError):
    status = 413
    code = "body_too_large"
    default_message = "The request body is larger than the proxy accepts."


class ExpectationFailed(ProxyError):
    status = 417
    code = "expectation_failed"
    default_message = "The proxy meets no expectation but 100-continue."


class UpstreamUnreachable(ProxyError):
    status = 502
    code = "upstream_unreachable"
    default_message = "The proxy could not connect to PandaDoc."


class AuthorizationRequired(ProxyError):
    status = 503
    code = "authorization_required"
    default_message = (
        "The proxy has no usable PandaDoc token: an operator must connect it to PandaDoc."
    )

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, authorize_url="/_proxy/oauth/authorize")


class RefreshFailed(ProxyError):
    status = 503
    code = "refresh_failed"
    default_message = (
        "PandaDoc's token endpoint failed; the stored authorization is kept, try again shortly."
    )

    def __init__(self, message: str | None = None, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)


class RefreshCeilingReached(RefreshFailed):
    """A renewal refused because ``tokens.max_refreshes_per_minute`` were done this minute."""


class Overloaded(ProxyError):
    status = 503
    code = "overloaded"
    default_message = "The proxy is handling as many requests as it is allowed to; retry shortly."
    answer_headers = {"Retry-After": "1"}


class TokenStoreUnavailable(ProxyError):
    status = 503
    code = "token_store_unavailable"
    default_message = "The token store (Redis) is unreachable and no token is held in memory."


class UpstreamTimeout(ProxyError):
    status = 504
    code = "upstream_timeout"
    default_message = "PandaDoc did not answer in time."


class HTTPRefusal(ProxyError):
    """aiohttp's own refusal on one of the proxy's routes (a 405, say), in the same shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
