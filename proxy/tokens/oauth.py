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
import json
from urllib.parse import quote_plus, urlencode

import aiohttp

from ..config import OAuthConfig
from .model import NewTokens

__all__ = ["TokenEndpointError", "exchange_code", "form_body", "refresh_tokens"]


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
    try:
        async with (
            asyncio.timeout(oauth.token_timeout_s),
            session.post(
                oauth.token_url,
                data=body.encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                allow_redirects=False,
            ) as response,
        ):
            status = response.status
            raw = await response.read()
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
