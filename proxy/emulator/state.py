"""In-memory bookkeeping of the emulator: codes, tokens, the workspace's data, counters.

Every method here is synchronous on purpose. The emulator serves all requests
from one event loop, so a method that never awaits runs to completion before
any other request is looked at: checking a refresh token and consuming it
happen in one step, and a single-use token stays single-use however many
refreshes race for it. Handlers must keep it that way: read the request, call
exactly one of these methods, and only then await anything (such as the
configured token-endpoint delay).
"""

from __future__ import annotations

import enum
import hmac
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from .model.contacts import ContactStore
from .model.document_store import DocumentStore
from .model.document_views import webhook_data
from .model.documents import Document
from .model.documents import Recipient as _Recipient
from .model.folders import FolderStore
from .model.templates import TemplateStore
from .model.webhooks import Subscription, WebhookHub
from .ratelimit import SlidingWindowLimiter
from .record import RequestLog
from .settings import EmulatorSettings

#: How long an authorization code may wait before being exchanged (RFC 6749 §4.1.2
#: recommends at most ten minutes).
CODE_LIFETIME_S = 600.0

#: The scope PandaDoc grants to API applications.
DEFAULT_SCOPE = "read+write"


class OAuthError(Exception):
    """An OAuth error response (RFC 6749 §5.2) the token endpoint should send."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class AuthOutcome(enum.Enum):
    """What the API's credential check concluded about one request."""

    OK = "ok"
    MISSING = "missing"  # no usable Authorization header
    INVALID = "invalid"  # unknown, superseded or revoked token, or wrong API key
    EXPIRED = "expired"  # a token we issued whose lifetime is over


@dataclass(eq=False)
class _Grant:
    """One user's consent. Refreshing extends the same grant, so the chain of
    tokens it produced can be invalidated or revoked together."""

    client_id: str
    scope: str
    id: str = field(default_factory=lambda: f"grant-{secrets.token_hex(6)}")
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _AccessToken:
    grant: _Grant
    expires_at: float  # on the state's clock
    expired: bool = False  # forced by expire_access_tokens()


@dataclass(eq=False)
class _RefreshToken:
    grant: _Grant
    used: bool = False
    revoked: bool = False


@dataclass(eq=False)
class _AuthorizationCode:
    client_id: str
    redirect_uri: str
    scope: str
    expires_at: float
    grant: _Grant | None = None  # set once redeemed; a second attempt is a replay


def _scope_items(scope: str) -> set[str]:
    """PandaDoc writes its scope as ``read+write``; RFC 6749 separates with spaces."""
    return {item for item in re.split(r"[\s+]+", scope) if item}


class EmulatorState:
    """Everything the emulator remembers between requests, plus its counters.

    ``clock`` is a monotonic clock in seconds; it is an attribute so a test may
    swap in a fake one instead of sleeping through a token's lifetime.
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self.clock = clock
        self.contacts = ContactStore()
        self.templates = TemplateStore()
        self.documents = DocumentStore(
            lambda: self.clock(),
            self.contacts,
            processing_s=lambda: self.settings.document_processing_s,
            completion_s=lambda: self.settings.document_completion_s,
        )
        self.folders = FolderStore(self.documents.in_folder)
        self.webhooks = WebhookHub()
        self.documents.on_event = self._document_event
        self.requests = RequestLog(self.settings.request_record_size, lambda: self.clock())
        self.limiter = SlidingWindowLimiter()
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._codes: dict[str, _AuthorizationCode] = {}
        self._token_failures: list[int] = []
        self.token_calls: Counter[str] = Counter()
        self.token_errors: Counter[str] = Counter()
        self.unauthorized_responses = 0
        self.api_requests = 0
        self.pairs_issued = 0
        self.codes_issued = 0
        self.throttled_responses = 0  # 429s of the rate limiter and of throttle faults

    # ---- minting -------------------------------------------------------------

    def issue_pair(self, scope: str = DEFAULT_SCOPE) -> dict[str, object]:
        """Mint a pair as if a user had just authorized; answers like the token endpoint.

        Lets a demo or a test start "already connected" without clicking through
        the authorize page.
        """
        return self._mint_pair(_Grant(self.settings.client_id, scope), scope=scope)

    @staticmethod
    def _new_secret(taken: Container[str]) -> str:
        """A fresh unguessable token (about 240 random bits)."""
        while True:  # a collision is astronomically unlikely, but cheap to exclude
            value = secrets.token_urlsafe(30)
            if value not in taken:
                return value

    def _mint_pair(
        self, grant: _Grant, *, scope: str, refresh_token: str | None = None
    ) -> dict[str, object]:
        """Issue a new access token (and a new refresh token unless one is given)."""
        if self.settings.invalidate_old_access_tokens:
            for old in grant.access_tokens:
                self._access_tokens.pop(old, None)
            grant.access_tokens.clear()
        lifetime = self.settings.access_token_lifetime_s
        access_token = self._new_secret(self._access_tokens)
        self._access_tokens[access_token] = _AccessToken(grant, self.clock() + lifetime)
        grant.access_tokens.append(access_token)
        if refresh_token is None:
            refresh_token = self._new_secret(self._refresh_tokens)
            self._refresh_tokens[refresh_token] = _RefreshToken(grant)
            grant.refresh_tokens.append(refresh_token)
        self.pairs_issued += 1
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            # Rounded up: a sub-second lifetime must not read as 0 ("already
            # expired"); the server itself compares against the precise float.
            "expires_in": (
                math.ceil(lifetime)
                if self.settings.expires_in_override is None
                else self.settings.expires_in_override
            ),
            "refresh_token": refresh_token,
            "scope": scope,
        }

    # ---- authorization codes -------------------------------------------------

    def create_code(self, client_id: str, redirect_uri: str, scope: str) -> str:
        """Record a user's approval and return the single-use code for it."""
        now = self.clock()
        for stale in [c for c, rec in self._codes.items() if rec.expires_at <= now]:
            del self._codes[stale]
        code = self._new_secret(self._codes)
        self._codes[code] = _AuthorizationCode(
            client_id, redirect_uri, scope, now + CODE_LIFETIME_S
        )
        self.codes_issued += 1
        return code

    def redeem_code(self, code: str, client_id: str, redirect_uri: str) -> dict[str, object]:
        """Exchange a code for a pair, or raise OAuthError (invalid_grant).

        A replayed code also revokes what the first exchange produced, as RFC
        6749 §4.1.2 advises: a replay means the code leaked.
        """
        record = self._codes.get(code)
        if record is None or record.expires_at <= self.clock():
            raise OAuthError("invalid_grant", "The authorization code is unknown or expired.")
        if record.grant is not None:
            self._revoke_grant(record.grant)
            raise OAuthError("invalid_grant", "The authorization code was already used.")
        if record.client_id != client_id:
            raise OAuthError("invalid_grant", "The authorization code belongs to another client.")
        if record.redirect_uri != redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri does not match the one used to authorize."
            )
        record.grant = _Grant(client_id, record.scope)
        return self._mint_pair(record.grant, scope=record.scope)

    def _revoke_grant(self, grant: _Grant) -> None:
        for token in grant.access_tokens:
            self._access_tokens.pop(token, None)
        grant.access_tokens.clear()
        for token in grant.refresh_tokens:
            self._refresh_tokens[token].revoked = True

    # ---- refresh -------------------------------------------------------------

    def redeem_refresh_token(
        self, refresh_token: str, client_id: str, scope: str | None = None
    ) -> dict[str, object]:
        """Check and consume a refresh token in one step; raise OAuthError if refused.

        Single use only applies when tokens rotate: without rotation the server
        hands the same refresh token back, so it has to stay usable.
        """
        record = self._refresh_tokens.get(refresh_token)
        if record is None:
            raise OAuthError("invalid_grant", "The refresh token is unknown.")
        if record.revoked:
            raise OAuthError("invalid_grant", "The refresh token has been revoked.")
        if record.used:
            raise OAuthError("invalid_grant", "The refresh token was already used.")
        if record.grant.client_id != client_id:
            raise OAuthError("invalid_grant", "The refresh token belongs to another client.")
        granted = record.grant.scope
        if scope is not None and scope != granted:
            if not _scope_items(scope) <= _scope_items(granted):
                raise OAuthError("invalid_scope", "The scope exceeds what was granted.")
            granted = scope
        rotate = self.settings.rotate_refresh_tokens
        if rotate and self.settings.single_use_refresh_tokens:
            record.used = True
        return self._mint_pair(
            record.grant, scope=granted, refresh_token=None if rotate else refresh_token
        )

    # ---- the API's credential check ------------------------------------------

    def authenticate(self, authorization: str | None) -> AuthOutcome:
        """Judge an ``Authorization`` header the way PandaDoc's API does.

        ``Bearer <token>`` is always accepted; ``API-Key <key>`` only when an
        API key is configured. Any other scheme counts as no credentials.
        """
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if not credentials:
            return AuthOutcome.MISSING
        if scheme.lower() == "bearer":
            token = self._access_tokens.get(credentials)
            if token is None:
                return AuthOutcome.INVALID
            if token.expired or self.clock() >= token.expires_at:
                return AuthOutcome.EXPIRED
            return AuthOutcome.OK
        if scheme.lower() == "api-key":
            key = self.settings.api_key
            if key is not None and hmac.compare_digest(credentials.encode(), key.encode()):
                return AuthOutcome.OK
            return AuthOutcome.INVALID
        return AuthOutcome.MISSING

    def credential_owner(self, authorization: str | None) -> str | None:
        """Whose rate limits a request counts against: its token's grant, or the API key.

        PandaDoc counts per user, not per token, so the tokens a refresh produces share
        their predecessors' count. None for a credential that is not accepted.
        """
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() == "api-key":
            return "api-key"
        token = self._access_tokens.get(credentials.strip())
        return None if token is None else token.grant.id

    # ---- webhooks --------------------------------------------------------------

    def _document_event(self, trigger: str, doc: Document, extra: Mapping[str, object]) -> None:
        recipient = extra.get("recipient")

        def data(subscription: Subscription) -> dict[str, object]:
            return webhook_data(
                doc, subscription.payload, recipient if isinstance(recipient, _Recipient) else None
            )

        self.webhooks.emit(trigger, data)

    # ---- fault injection -----------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far answer 401 "Token expired."."""
        for token in self._access_tokens.values():
            token.expired = True

    def revoke_refresh_tokens(self) -> None:
        """Make every refresh token issued so far answer invalid_grant."""
        for token in self._refresh_tokens.values():
            token.revoked = True

    def fail_token_endpoint(self, times: int, status: int = 500) -> None:
        """The next ``times`` token-endpoint calls answer ``status`` and consume nothing.

        Replaces any failures still pending, so ``times=0`` cancels them.
        """
        if times < 0:
            raise ValueError("times must not be negative")
        if not 400 <= status <= 599:
            raise ValueError("status must be an error status (400-599)")
        self._token_failures = [status] * times

    def take_token_failure(self) -> int | None:
        """The status the current token-endpoint call must fail with, if any."""
        return self._token_failures.pop() if self._token_failures else None

    # ---- counters ------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """All counters, JSON-able (served at ``GET /_emulator/stats``)."""
        return {
            "token_calls": dict(sorted(self.token_calls.items())),
            "token_errors": dict(sorted(self.token_errors.items())),
            "unauthorized_responses": self.unauthorized_responses,
            "api_requests": self.api_requests,
            "pairs_issued": self.pairs_issued,
            "codes_issued": self.codes_issued,
            "pending_token_failures": len(self._token_failures),
            "throttled_responses": self.throttled_responses,
            "requests_recorded": self.requests.last_seq,
        }

    def reset_stats(self) -> None:
        """Zero the counters (tokens, codes and documents are kept)."""
        self.token_calls.clear()
        self.token_errors.clear()
        self.unauthorized_responses = 0
        self.api_requests = 0
        self.pairs_issued = 0
        self.codes_issued = 0
        self.throttled_responses = 0


#: Where ``create_emulator_app`` keeps the state: ``app[EMULATOR_STATE]``.
EMULATOR_STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)
