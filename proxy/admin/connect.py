"""The "Connect to PandaDoc" flow: RFC 6749 section 4.1, with the proxy as the client.

``/_proxy/oauth/authorize`` makes a random, single-use ``state``, keeps it in the token store
for ten minutes (the callback may land on another replica) bound to this browser by a cookie,
and redirects to PandaDoc's consent page. ``/_proxy/oauth/callback`` accepts the state once, only
from the browser it was issued to, exchanges the code, and stores the pair, fenced like a
refresh. Nothing is stored unless all of that succeeds. The flow never redirects anywhere but
to the configured ``oauth.authorize_url``, so it cannot be used as an open redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from ..errors import NotFound
from ..keys import CLIENT_SESSION, CONFIG, REPLICA_ID, TOKENS
from ..moments import describe_moment
from ..tokens import TokenStoreError
from ..tokens.manager import TokenManager
from ..tokens.oauth import TokenEndpointError, authorization_url, exchange_code
from .html import escape, html_page

__all__ = ["authorize", "callback"]

log = logging.getLogger("pandadoc_proxy.connect")

STATE_TTL_S = 600
_COOKIE = "pandadoc_proxy_oauth"


def _binding(nonce: str) -> str:
    # The store keeps a hash of the browser's cookie, so reading Redis is not enough to forge it.
    return hashlib.sha256(nonce.encode()).hexdigest()


def _tokens(request: web.Request) -> TokenManager:
    tokens = request.app.get(TOKENS)
    if tokens is None:
        raise NotFound("OAuth is off: the proxy runs in API-key mode.")
    return tokens


async def authorize(request: web.Request) -> web.Response:
    tokens = _tokens(request)
    config = request.app[CONFIG]
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    try:
        await tokens.put_oauth_state(state, _binding(nonce), STATE_TTL_S)
    except TokenStoreError:
        return _failure(503, "The token store (Redis) is unreachable; try again in a moment.")
    response = web.HTTPFound(authorization_url(config.oauth, state))
    response.set_cookie(
        _COOKIE,
        nonce,
        max_age=STATE_TTL_S,
        path="/_proxy/oauth/",
        httponly=True,
        # The cookie comes back to redirect_uri: behind a TLS-terminating load balancer the
        # proxy itself sees plain HTTP, so the scheme of redirect_uri decides.
        secure=config.oauth.redirect_uri.startswith("https:"),
        # Lax: the cookie comes back on PandaDoc's top-level redirect to the callback.
        samesite="Lax",
    )
    log.info("connect started", extra={"event": "connect_start"})
    raise response


async def callback(request: web.Request) -> web.Response:
    tokens = _tokens(request)
    state = request.query.get("state", "")
    try:
        binding = await tokens.take_oauth_state(state) if state else None
    except TokenStoreError:
        return _failure(503, "The token store (Redis) is unreachable; try again in a moment.")
    nonce = request.cookies.get(_COOKIE, "")
    if binding is None or not nonce or not hmac.compare_digest(_binding(nonce), binding):
        log.warning(
            "connect refused: unknown, reused or foreign state",
            extra={"event": "connect_bad_state"},
        )
        if binding is not None and not nonce:
            # A live state, but this browser sent no cookie: the flow was most likely started
            # on another host name than this one (cookies are per host).
            return _failure(
                400,
                "Your browser did not send back the sign-in cookie, so this answer cannot be "
                f"tied to it: the connection was probably started on another address than "
                f"{request.host}. Start again from {_status_page_on(request)}.",
            )
        return _failure(
            400,
            "This sign-in link is not valid any more (it was already used, has expired, or was "
            "started in another browser). Start again from the status page.",
        )
    if "error" in request.query:
        error = request.query.get("error", "")
        log.warning("PandaDoc did not authorize", extra={"event": "connect_denied", "error": error})
        return _failure(400, f"PandaDoc did not authorize the proxy ({error}).")
    code = request.query.get("code", "")
    if not code:
        return _failure(400, "PandaDoc's answer has no authorization code.")

    config = request.app[CONFIG]
    try:
        issued = await exchange_code(request.app[CLIENT_SESSION], config.oauth, code)
    except TokenEndpointError as exc:
        log.warning("code exchange failed", extra={"event": "connect_failed", "error": exc.error})
        status = 502 if exc.retryable else 400
        return _failure(status, f"PandaDoc refused to exchange the code ({exc.error}).")
    try:
        stored = await tokens.replace(issued, obtained_by=request.app[REPLICA_ID])
    except TokenStoreError:
        return _failure(503, "The token store (Redis) is unreachable; the new token was not kept.")
    log.info("connected to PandaDoc", extra={"event": "connected", "version": stored.version})
    expiry = ""
    if stored.expires_at is not None:
        expiry = (
            f" The access token expires {describe_moment(stored.expires_at)} and is refreshed "
            "before."
        )
    response = html_page(
        "Connected",
        "<h1>Connected to PandaDoc</h1><p><span class='state ok'>Connected</span></p>"
        "<p>The proxy stored a new token, and every replica uses it from now on: your apps can "
        f"send their requests through the proxy.{escape(expiry)}</p>"
        "<p><a href='/_proxy/'>Back to the status page</a></p>",
    )
    response.del_cookie(_COOKIE, path="/_proxy/oauth/")
    return response


def _status_page_on(request: web.Request) -> str:
    """The status page on the host the callback is on (``oauth.redirect_uri``'s)."""
    redirect = urlsplit(request.app[CONFIG].oauth.redirect_uri)
    return f"{redirect.scheme}://{redirect.netloc}/_proxy/"


def _failure(status: int, message: str, *, title: str = "Connection failed") -> web.Response:
    body = (
        f"<h1>{escape(title)}</h1>"
        f"<p>{escape(message)}</p><p><a href='/_proxy/'>Back to the status page</a></p>"
    )
    return html_page(title, body, status=status)
