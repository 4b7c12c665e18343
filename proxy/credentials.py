"""How a forwarded request is authorized at PandaDoc: one object per auth mode.

httpx's ``Auth`` flows are the model: the forwarder asks its credentials for the header to
send, shows them each answer that might be a rejection, and is told what to send next, or
that the answer goes to the client. It knows no auth mode itself.

- :class:`ApiKeyCredentials`: PandaDoc's ``Authorization: API-Key <key>``. A fixed key, nothing
  to renew: PandaDoc's 401 goes to the client.
- :class:`BearerCredentials`: the OAuth pair of a :class:`~.tokens.manager.TokenManager`. An
  answer rejects the token when it is a 401, or a 403 whose JSON body says
  ``"type": "authentication_error"`` (PandaDoc documents that body for an invalid token). What
  follows a rejection is contract section 5's rule, in :class:`_AfterRejection`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from .tokens.manager import TokenManager
from .tokens.model import StoredPair, authorization_state

__all__ = ["ApiKeyCredentials", "BearerCredentials", "Credentials", "Grant", "Retry"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What one attempt sends: the ``Authorization`` value, and the pair it comes from."""

    header: str
    pair: StoredPair | None = None


class Retry(Protocol):
    """What a request does after PandaDoc rejected its credential, one attempt at a time."""

    @property
    def exhausted(self) -> bool:
        """True when a further rejection goes to the client as it is."""

    async def next_grant(self) -> Grant:
        """The credential for the next attempt; may wait for a renewal, or raise the
        :class:`~.errors.ProxyError` that answers the client instead."""


class Credentials(Protocol):
    def ready(self) -> Grant | None:
        """The grant for a request when it is at hand without waiting (the hot path)."""

    async def grant(self) -> Grant:
        """The grant for a request, waiting for the store or a renewal if need be."""

    def may_reject(self, status: int) -> bool:
        """Whether an answer with ``status`` could be a rejection of the credential: only
        those are shown to :meth:`rejected`."""

    async def rejected(self, response: aiohttp.ClientResponse) -> tuple[bool, bytes | None]:
        """Whether ``response`` rejected the credential; also the body, if it had to be read
        to decide and the answer goes to the client."""

    def after_rejection(self, grant: Grant) -> Retry:
        """The plan for a request whose ``grant`` was just rejected."""

    def state(self) -> str:
        """The authorization state an operator sees (``model.AUTHORIZATION_STATES``)."""


class _NoRetry:
    exhausted = True

    async def next_grant(self) -> Grant:  # pragma: no cover - never asked: exhausted
        raise AssertionError("no retry after an API key was rejected")


class ApiKeyCredentials:
    def __init__(self, api_key: str) -> None:
        self._grant = Grant(f"API-Key {api_key}")

    def ready(self) -> Grant:
        return self._grant

    async def grant(self) -> Grant:
        return self._grant

    def may_reject(self, status: int) -> bool:
        return False

    async def rejected(self, response: aiohttp.ClientResponse) -> tuple[bool, bytes | None]:
        return False, None

    def after_rejection(self, grant: Grant) -> Retry:
        return _NoRetry()

    def state(self) -> str:
        return "api_key"


#: A 403 body is inspected only when it is JSON of at most this size.
_MAX_INSPECTED_BODY = 64 * 1024


class BearerCredentials:
    def __init__(self, tokens: TokenManager, *, refresh_on_403: bool = True) -> None:
        self.tokens = tokens
        self._refresh_on_403 = refresh_on_403
        self._grant_of: tuple[StoredPair | None, Grant | None] = (None, None)

    def ready(self) -> Grant | None:
        pair = self.tokens.fresh()
        return None if pair is None else self.grant_for(pair)

    async def grant(self) -> Grant:
        return self.grant_for(await self.tokens.current())

    def grant_for(self, pair: StoredPair) -> Grant:
        held, grant = self._grant_of
        if held is not pair or grant is None:
            # One Grant per pair, not per request: the hot path allocates nothing here.
            grant = Grant(f"Bearer {pair.access_token}", pair)
            self._grant_of = (pair, grant)
        return grant

    def may_reject(self, status: int) -> bool:
        return status == 401 or (status == 403 and self._refresh_on_403)

    async def rejected(self, response: aiohttp.ClientResponse) -> tuple[bool, bytes | None]:
        """PandaDoc answers 401 for an expired or replaced token, and documents a 403 with
        ``{"type": "authentication_error", ...}`` for a rejected one; only that body makes a
        403 count, since a 403 is otherwise about permissions, which a new token would not
        change."""
        length = response.content_length
        small = length is not None and length <= _MAX_INSPECTED_BODY
        if response.status == 401:
            if small:
                await response.read()  # Drained, so the connection goes back to the pool.
            return True, None
        if response.content_type != "application/json" or not small:
            return False, None
        body = await response.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            return False, body
        is_auth_error = isinstance(parsed, dict) and parsed.get("type") == "authentication_error"
        return is_auth_error, None if is_auth_error else body

    def after_rejection(self, grant: Grant) -> Retry:
        assert grant.pair is not None  # Every bearer grant names its pair.
        return _AfterRejection(self, grant.pair)

    def state(self) -> str:
        return authorization_state(self.tokens.held)


class _AfterRejection:
    """Contract section 5, for one request whose token PandaDoc rejected.

    A 401 for a token that is no longer the stored one (this process's copy was behind) is
    sent again with the stored one; that is not yet the replay. A rejection of the stored
    token renews it (single flight, ``tokens/refresher.py``) and replays the request. At most
    one renewal and three attempts per request: a rejection of a token obtained after the
    request was first rejected goes to the client.
    """

    def __init__(self, credentials: BearerCredentials, rejected: StoredPair) -> None:
        self._credentials = credentials
        self._rejected = rejected
        self._looked_at_store = False
        self._renewed = False

    @property
    def exhausted(self) -> bool:
        return self._renewed

    async def next_grant(self) -> Grant:
        tokens = self._credentials.tokens
        if not self._looked_at_store:
            self._looked_at_store = True
            stored = await tokens.stored_instead_of(self._rejected)
            if stored is not None:
                self._rejected = stored
                return self._credentials.grant_for(stored)
        self._renewed = True
        pair = await tokens.renew(self._rejected, trigger="rejected")
        return self._credentials.grant_for(pair)
