"""The OAuth 2.0 authorization-code flow (RFC 6749), shaped like PandaDoc's.

``GET /oauth2/authorize`` shows the consent page a user would see,
``POST /oauth2/authorize`` records the decision and redirects back to the
application, and ``POST /oauth2/access_token`` exchanges codes and refresh
tokens for token pairs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlencode, urlsplit

from aiohttp import web
from multidict import MultiMapping

from .settings import EmulatorSettings
from .state import DEFAULT_SCOPE, EMULATOR_STATE, EmulatorState, OAuthError

FORM_TYPE = "application/x-www-form-urlencoded"

#: Token responses carry credentials and must never be cached (RFC 6749 §5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated ``/oauth2/authorize`` request."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None


def _single_values(params: MultiMapping[object]) -> dict[str, str] | str:
    """Parameters as a plain dict, or an error text when one is repeated.

    RFC 6749 §3.1 and §3.2: parameters must not be included more than once; a
    server that silently picked one copy would hide a client bug.
    """
    repeated = sorted(name for name, n in Counter(params.keys()).items() if n > 1)
    if repeated:
        return f"parameter(s) sent more than once: {', '.join(repeated)}"
    return {name: value for name, value in params.items() if isinstance(value, str)}


def _check_authorization_request(
    params: Mapping[str, str], settings: EmulatorSettings
) -> AuthorizationRequest | str:
    """Validate client and redirect URI before trusting either; else an error text.

    Nothing here may redirect: until both are known good, an error has to be
    shown to the user, or the emulator would be an open redirector.
    """
    client_id = params.get("client_id", "")
    if not client_id:
        return "The client_id parameter is missing."
    if client_id != settings.client_id:
        return f"Unknown client_id {client_id!r}."
    redirect_uri = params.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return "The redirect_uri must be an absolute http(s) URL without a fragment."
    if params.get("response_type") != "code":
        return 'The response_type must be "code".'
    return AuthorizationRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=params.get("scope") or DEFAULT_SCOPE,
        state=params.get("state"),
    )


def _redirect(uri: str, params: Mapping[str, str | None]) -> web.Response:
    """302 to ``uri`` with ``params`` appended, keeping its own query verbatim."""
    extra = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    if not urlsplit(uri).query:
        separator = "" if uri.endswith("?") else "?"
    else:
        separator = "" if uri.endswith("&") else "&"
    headers = {"Location": uri + separator + extra, **_NO_STORE}
    return web.Response(status=302, headers=headers)


def _html(status: int, title: str, body: str) -> web.Response:
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        headers={**_NO_STORE, "X-Frame-Options": "DENY"},  # no click-jacking the consent
    )


def _error_page(problem: str) -> web.Response:
    return _html(
        400,
        "Authorization error",
        f"<h1>Authorization error</h1>\n<p>{html.escape(problem)}</p>",
    )


def _consent_page(req: AuthorizationRequest) -> web.Response:
    """The page a user sees: what asks for access, to what, and two buttons."""
    hidden = {
        "client_id": req.client_id,
        "redirect_uri": req.redirect_uri,
        "scope": req.scope,
        "response_type": "code",
        "state": req.state,
    }
    fields = "\n".join(
        f"<input type='hidden' name='{name}' value='{html.escape(value, quote=True)}'>"
        for name, value in hidden.items()
        if value is not None
    )
    app = html.escape(req.client_id)
    body = (
        f"<h1>Authorize {app}</h1>\n"
        f"<p><strong>{app}</strong> asks for access to your PandaDoc (emulator) account"
        f" with scope <code>{html.escape(req.scope)}</code>.</p>\n"
        f"<p>You will be sent back to <code>{html.escape(req.redirect_uri)}</code>.</p>\n"
        "<form method='post' action='/oauth2/authorize'>\n"
        f"{fields}\n"
        '<button type="submit" name="decision" value="approve">Authorize</button>\n'
        '<button type="submit" name="decision" value="deny">Deny</button>\n'
        "</form>"
    )
    return _html(200, f"Authorize {req.client_id}", body)


def _approve(state: EmulatorState, req: AuthorizationRequest) -> web.Response:
    code = state.create_code(req.client_id, req.redirect_uri, req.scope)
    return _redirect(req.redirect_uri, {"code": code, "state": req.state})


async def authorize_page(request: web.Request) -> web.Response:
    """``GET /oauth2/authorize``: the consent page (or, with auto_approve, the redirect)."""
    state = request.app[EMULATOR_STATE]
    params = _single_values(request.query)
    if isinstance(params, str):
        return _error_page(params)
    req = _check_authorization_request(params, state.settings)
    if isinstance(req, str):
        return _error_page(req)
    if state.settings.auto_approve:
        return _approve(state, req)
    return _consent_page(req)


async def authorize_decision(request: web.Request) -> web.Response:
    """``POST /oauth2/authorize``: the user pressed Authorize or Deny.

    The hidden fields come back from the browser, so they are validated again.
    """
    state = request.app[EMULATOR_STATE]
    if request.content_type != FORM_TYPE:
        return _error_page(f"The form must be sent as {FORM_TYPE}.")
    params = _single_values(await request.post())
    if isinstance(params, str):
        return _error_page(params)
    req = _check_authorization_request(params, state.settings)
    if isinstance(req, str):
        return _error_page(req)
    decision = params.get("decision")
    if decision == "approve":
        return _approve(state, req)
    if decision == "deny":
        return _redirect(req.redirect_uri, {"error": "access_denied", "state": req.state})
    return _error_page('The decision must be "approve" or "deny".')


# ---- token endpoint -------------------------------------------------------------


def _uses_basic(header: str | None) -> bool:
    return (header or "").strip().partition(" ")[0].lower() == "basic"


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic``, form-decoded (RFC 6749 §2.3.1)."""
    if not _uses_basic(header):
        return None
    encoded = header.strip().partition(" ")[2]
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
    return unquote_plus(client_id), unquote_plus(secret)


def _authenticate_client(
    authorization: str | None, form: Mapping[str, str], settings: EmulatorSettings
) -> str:
    """The authenticated client_id, by HTTP Basic or form fields; else OAuthError."""
    basic = _basic_credentials(authorization) if authorization else None
    if basic is not None:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        client_id, secret = basic
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials.")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if client_id != settings.client_id or secret != settings.client_secret:
        raise OAuthError("invalid_client", "Client authentication failed.", 401)
    return client_id


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"The {name} parameter is missing.")
    return value


def _exchange(
    state: EmulatorState, authorization: str | None, form: Mapping[str, str] | str | None
) -> dict[str, object]:
    """Validate a token request and, if it is good, consume its grant and mint a pair.

    Synchronous on purpose: see the module docstring of ``state``.
    """
    if form is None:
        raise OAuthError("invalid_request", f"The request body must be {FORM_TYPE}.")
    if isinstance(form, str):
        raise OAuthError("invalid_request", form)
    client_id = _authenticate_client(authorization, form, state.settings)
    grant_type = _required(form, "grant_type")
    if grant_type == "authorization_code":
        code, redirect_uri = _required(form, "code"), _required(form, "redirect_uri")
        return state.redeem_code(code, client_id, redirect_uri)
    if grant_type == "refresh_token":
        refresh_token = _required(form, "refresh_token")
        return state.redeem_refresh_token(refresh_token, client_id, form.get("scope") or None)
    raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")


async def _read_form(request: web.Request) -> dict[str, str] | str | None:
    """The form, an error text if it cannot be parsed, or None if it is no form."""
    if request.content_type != FORM_TYPE:
        await request.read()  # drained so the connection stays reusable
        return None
    try:
        return _single_values(await request.post())
    except ValueError:  # e.g. undecodable bytes
        return "The form body could not be parsed."


async def token_endpoint(request: web.Request) -> web.Response:
    """``POST /oauth2/access_token``: exchange a code or a refresh token for a pair.

    Order of events, chosen to be the harsh case for clients: the request is
    validated and its code or refresh token consumed at once, *then* the
    configured delay passes, then the answer is sent. A client that gives up
    during the delay has already burned its refresh token, exactly as with a
    real server that is slow to respond.
    """
    state = request.app[EMULATOR_STATE]
    form = await _read_form(request)
    grant_type = form.get("grant_type") if isinstance(form, dict) else None
    state.token_calls[grant_type or "none"] += 1
    failure = state.take_token_failure()
    status, headers = 200, dict(_NO_STORE)
    body: dict[str, object]
    if failure is not None:
        status, body = failure, {"error": "server_error"}
        state.token_errors["server_error"] += 1
    else:
        try:
            body = _exchange(state, request.headers.get("Authorization"), form)
        except OAuthError as exc:
            status, body = exc.status, {"error": exc.error, "error_description": exc.description}
            state.token_errors[exc.error] += 1
            if exc.status == 401 and _uses_basic(request.headers.get("Authorization")):
                headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    delay = state.settings.token_endpoint_delay_s
    if delay > 0:
        await asyncio.sleep(delay)
    return web.json_response(body, status=status, headers=headers)
