"""The client side of PandaDoc's token endpoint (RFC 6749 sections 4.1.3 and 6).

Both grants post a form-encoded body to ``oauth.token_url``. Failures come back as one
:class:`TokenEndpointError` whose ``error`` says what the caller may do next:

- ``invalid_grant``: the code or refresh token was rejected (used, revoked, expired);
- ``invalid_client`` and other 4xx: the proxy's own credentials or request are wrong;
- ``unavailable``: a 5xx, a timeout or a broken connection: the outcome is unknown, and the
  grant may or may not have been consumed.

Neither the message nor ``repr`` ever contains the tokens or the client secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlencode

import aiohttp

from ..config import OAuthConfig
from .model import NewTokens

__all__ = [
    "TokenEndpointError",
    "authorization_url",
    "exchange_code",
    "form_body",
    "freeze_tolerant_timeout",
    "refresh_tokens",
]

T = TypeVar("T")

#: A timer that fires this much later than asked shows that the process was frozen.
_FREEZE_SLACK_S = 0.5
#: After a freeze, how long an answer already in the socket is given to be read.
_AFTER_FREEZE_GRACE_S = 1.0


class TokenEndpointError(Exception):
    def __init__(self, error: str, description: str, status: int | None = None) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")

    @property
    def retryable(self) -> bool:
        return self.error == "unavailable"


def form_body(oauth: OAuthConfig, **fields: str) -> str:
    """The form body, with ``scope`` on the wire as PandaDoc documents it (``read+write``).

    ``oauth.scope`` is taken as already form-encoded when it is (``read+write`` stays as it
    is); a scope written with spaces (``read write``) is encoded to the same thing.
    """
    body = urlencode({"client_id": oauth.client_id, "client_secret": oauth.client_secret, **fields})
    return f"{body}&scope={quote_plus(oauth.scope, safe='+')}"


def authorization_url(oauth: OAuthConfig, state: str) -> str:
    """Where to send the browser to ask PandaDoc for a code (RFC 6749 section 4.1.1)."""
    query = urlencode(
        {
            "client_id": oauth.client_id,
            "redirect_uri": oauth.redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    separator = "&" if "?" in oauth.authorize_url else "?"
    return f"{oauth.authorize_url}{separator}{query}&scope={quote_plus(oauth.scope, safe='+')}"


async def exchange_code(
    session: aiohttp.ClientSession,
    oauth: OAuthConfig,
    code: str,
    *,
    redirect_uri: str | None = None,
) -> NewTokens:
    body = form_body(
        oauth,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri or oauth.redirect_uri,
    )
    return await _post(session, oauth, body)


async def refresh_tokens(
    session: aiohttp.ClientSession, oauth: OAuthConfig, refresh_token: str
) -> NewTokens:
    body = form_body(oauth, grant_type="refresh_token", refresh_token=refresh_token)
    return await _post(session, oauth, body)


async def _post(session: aiohttp.ClientSession, oauth: OAuthConfig, body: str) -> NewTokens:
    async def exchange() -> tuple[int, bytes]:
        async with session.post(
            oauth.token_url,
            data=body.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            allow_redirects=False,
            # No read timeout here: freeze_tolerant_timeout below is the only one.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=oauth.token_timeout_s),
        ) as response:
            return response.status, await response.read()

    try:
        status, raw = await freeze_tolerant_timeout(exchange(), oauth.token_timeout_s)
    except TimeoutError:
        raise TokenEndpointError("unavailable", "the token endpoint timed out") from None
    except aiohttp.ClientError as exc:
        raise TokenEndpointError(
            "unavailable", f"connection failed ({type(exc).__name__})"
        ) from None

    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if status >= 500 or status == 429:
        raise TokenEndpointError("unavailable", f"the token endpoint answered {status}", status)
    if not isinstance(payload, dict):
        raise TokenEndpointError(
            "invalid_response", f"status {status} without a JSON object", status
        )
    if status != 200:
        error = payload.get("error")
        description = payload.get("error_description") or f"the token endpoint answered {status}"
        raise TokenEndpointError(
            error if isinstance(error, str) and error else "invalid_request",
            str(description)[:200],
            status,
        )
    try:
        return NewTokens.from_token_response(payload)
    except ValueError as exc:
        raise TokenEndpointError("invalid_response", str(exc), status) from None


async def freeze_tolerant_timeout(coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """Await ``coro`` for ``timeout_s`` seconds of this process actually running.

    A plain deadline (``asyncio.timeout``, or aiohttp's own timeouts) goes wrong when the
    process is frozen (GC pause, VM freeze, SIGSTOP) while the token endpoint answers: on
    resume, the event loop runs the overdue timer before it reads the socket (uvloop always
    does), so the answer, a new pair PandaDoc issued in exchange for a single-use refresh
    token, is thrown away unread and the refresh token is lost with it.

    Here, a timer that fires much later than asked means the process was frozen; instead of
    giving up, the exchange gets a short grace period in which the answer, if it is already in
    the socket, is read.
    """
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    remaining = timeout_s
    try:
        while True:
            started = loop.time()
            done, _ = await asyncio.wait({task}, timeout=remaining)
            if done:
                return task.result()
            overslept = loop.time() - started - remaining
            if overslept <= _FREEZE_SLACK_S:
                raise TimeoutError
            remaining = _AFTER_FREEZE_GRACE_S
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
