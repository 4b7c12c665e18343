"""``GET /_proxy/``: what an operator needs to see at 3 a.m., and the button to fix it.

Connected or not, when the token expires, when and by which replica it was last refreshed,
whether refreshing is failing, and a "Connect to PandaDoc" (or "Reconnect") button. Never a
token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from ..keys import CONFIG, REPLICA_ID, TOKENS
from ..moments import describe_moment
from ..tokens import StoredPair, TokenStoreError
from ..tokens.model import authorization_state
from .html import escape, html_page

__all__ = ["status_page"]


def _state(pair: StoredPair | None) -> tuple[str, str, str]:
    """(css class, label, explanation) of the authorization state."""
    state = authorization_state(pair)
    if pair is None or state == "not_connected":
        return (
            "bad",
            "Not connected",
            "No token is stored, so requests through the proxy get 503 until someone connects "
            "it to PandaDoc.",
        )
    if state == "authorization_required":
        return (
            "bad",
            "Authorization required",
            f"PandaDoc rejected the stored authorization ({escape(pair.authorization_lost or '')})."
            " Requests get 503 until someone connects again.",
        )
    if state == "refresh_failing":
        return (
            "warn",
            "Refresh failing",
            f"The last refresh failed ({escape(pair.refresh_error or '')}, "
            f"{escape(describe_moment(pair.refresh_failed_at))}); the stored token is kept and "
            "retried.",
        )
    return "ok", "Connected", "Requests are forwarded with the stored token."


async def status_page(request: web.Request) -> web.Response:
    replica = escape(request.app[REPLICA_ID])
    tokens = request.app.get(TOKENS)
    if tokens is None:
        body = (
            "<h1>pandadoc-proxy</h1><p><span class='state ok'>API-key mode</span></p>"
            "<p>Requests are forwarded with the configured PandaDoc API key. OAuth and token "
            f"refresh are off.</p><p class=note>Replica {replica}</p>"
        )
        return html_page("Status", body)

    redis_row = "reachable"
    pair: StoredPair | None = None
    try:
        pair = await tokens.reload()
    except TokenStoreError as exc:
        redis_row = f"<span class='state bad'>unreachable</span> ({escape(str(exc))})"
        pair = tokens.held
    css, label, explanation = _state(pair)
    rows = [("Token store (Redis)", redis_row)]
    if pair is not None:
        rows += [
            ("Access token expires", escape(describe_moment(pair.expires_at))),
            (
                "Token obtained",
                f"{escape(describe_moment(pair.obtained_at))} by {escape(pair.obtained_by)}",
            ),
        ]
    rows.append(("This replica", replica))
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    button = "Connect to PandaDoc" if pair is None or not pair.usable else "Reconnect"
    connect_from, elsewhere = _connect_origin(request)
    body = (
        "<h1>pandadoc-proxy</h1>"
        f"<p><span class='state {css}'>{label}</span></p><p>{explanation}</p>"
        f"<table>{table}</table>{elsewhere}"
        f"<p><a class=button href='{escape(connect_from)}/_proxy/oauth/authorize'>{button}</a></p>"
        "<p class=note>Connecting opens PandaDoc's consent page; after you approve, PandaDoc "
        "sends you back here and every replica uses the new token.</p>"
    )
    return html_page("Status", body)


def _connect_origin(request: web.Request) -> tuple[str, str]:
    """Where the Connect button must lead, and a note when that is not this page's host.

    The connect flow binds its ``state`` to the browser with a cookie (contract section 3), set
    by ``/_proxy/oauth/authorize`` and read back by the callback at ``oauth.redirect_uri``. A
    browser sends a cookie only to the host that set it: started on ``localhost`` while the
    redirect URI names ``127.0.0.1`` (or the service's DNS name, reached here through a
    tunnel), the callback gets no cookie and refuses. So the button starts the flow on the
    redirect URI's own host, and the page says why.
    """
    redirect = urlsplit(request.app[CONFIG].oauth.redirect_uri)
    if redirect.netloc.lower() == request.host.lower():
        return "", ""
    origin = f"{redirect.scheme}://{redirect.netloc}"
    note = (
        "<p class=note><strong>Connect from "
        f"<a href='{escape(origin)}/_proxy/'>{escape(origin)}</a></strong>: PandaDoc sends "
        f"you back to {escape(origin)} (<code>oauth.redirect_uri</code>), and your browser "
        f"keeps the sign-in cookie only for the host that set it, so the button below starts "
        f"there rather than on {escape(request.host)}.</p>"
    )
    return origin, note
