"""The emulator's OAuth 2.0 server: the consent page, the token endpoint, and access
tokens as the API judges them."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from proxy.emulator import EmulatorSettings, EmulatorState

from .emulator_helpers import Client, FakeClock, Json, bearer, fetch

CLIENT_CREDENTIALS = {"client_id": "emulator-client", "client_secret": "emulator-secret"}
REDIRECT_URI = "https://app.example/callback?tenant=7"


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": "emulator-client",
        "redirect_uri": REDIRECT_URI,
        "scope": "read+write",
        "response_type": "code",
        "state": "opaque-state",
    }
    params.update(overrides)
    return params


def redirect_query(response: aiohttp.ClientResponse) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["Location"]).query)


async def token_call(client: Client, **form: str) -> tuple[int, Json, aiohttp.ClientResponse]:
    return await fetch(client, "POST", "/oauth2/access_token", data={**CLIENT_CREDENTIALS, **form})


async def refresh(client: Client, refresh_token: object) -> tuple[int, Json]:
    status, body, _ = await token_call(
        client, grant_type="refresh_token", refresh_token=str(refresh_token)
    )
    return status, body


async def approve(client: Client, **overrides: str) -> str:
    """Press "Authorize" on the consent page; return the code from the redirect."""
    form = {**authorize_params(**overrides), "decision": "approve"}
    async with client.post("/oauth2/authorize", data=form, allow_redirects=False) as response:
        assert response.status == 302
        return redirect_query(response)["code"][0]


async def api_status(client: Client, token: object) -> tuple[int, Json]:
    status, body, _ = await fetch(client, "GET", "/public/v1/documents", headers=bearer(token))
    return status, body


# ---- the authorization page ----------------------------------------------------


async def test_the_authorize_page_offers_authorize_and_deny_for_the_app(client: Client) -> None:
    status, body, response = await fetch(
        client, "GET", "/oauth2/authorize", params=authorize_params()
    )
    page = body.decode()
    assert status == 200
    assert response.content_type == "text/html"
    assert "<title>Authorize emulator-client</title>" in page
    assert '<button type="submit" name="decision" value="approve">Authorize</button>' in page
    assert 'value="deny">Deny</button>' in page
    assert "name='state' value='opaque-state'" in page
    assert "action='/oauth2/authorize'" in page


async def test_an_unknown_client_gets_an_error_page_not_a_redirect(client: Client) -> None:
    params = authorize_params(client_id="intruder")
    status, _, response = await fetch(
        client, "GET", "/oauth2/authorize", params=params, allow_redirects=False
    )
    assert status == 400
    assert "Location" not in response.headers


async def test_a_response_type_other_than_code_gets_an_error_page(client: Client) -> None:
    params = authorize_params(response_type="token")
    status, body, response = await fetch(
        client, "GET", "/oauth2/authorize", params=params, allow_redirects=False
    )
    assert status == 400
    assert "Location" not in response.headers
    assert b"response_type" in body


async def test_approving_redirects_with_a_code_and_the_state_in_the_existing_query(
    client: Client,
) -> None:
    odd_state = "a b&c=d/é+%"
    form = {**authorize_params(state=odd_state), "decision": "approve"}
    async with client.post("/oauth2/authorize", data=form, allow_redirects=False) as response:
        location = response.headers["Location"]
        query = redirect_query(response)
    assert response.status == 302
    assert location.startswith(REDIRECT_URI + "&")
    assert query["tenant"] == ["7"]
    assert query["state"] == [odd_state]
    assert len(query["code"][0]) >= 32


async def test_denying_redirects_with_access_denied_and_the_state(client: Client) -> None:
    form = {**authorize_params(), "decision": "deny"}
    async with client.post("/oauth2/authorize", data=form, allow_redirects=False) as response:
        query = redirect_query(response)
    assert response.status == 302
    assert query == {"tenant": ["7"], "error": ["access_denied"], "state": ["opaque-state"]}


async def test_auto_approve_redirects_at_once_with_a_usable_code(
    client: Client, settings: EmulatorSettings
) -> None:
    settings.auto_approve = True
    async with client.get(
        "/oauth2/authorize", params=authorize_params(), allow_redirects=False
    ) as response:
        query = redirect_query(response)
    assert response.status == 302
    status, _, _ = await token_call(
        client, grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT_URI
    )
    assert status == 200


# ---- the token endpoint: authorization codes ----------------------------------


async def test_a_code_exchanges_for_a_bearer_pair_that_must_not_be_cached(client: Client) -> None:
    code = await approve(client)
    status, body, response = await token_call(
        client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI
    )
    assert status == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 31_536_000
    assert body["scope"] == "read+write"
    assert response.headers["Cache-Control"] == "no-store"
    assert (await api_status(client, body["access_token"]))[0] == 200


async def test_a_code_works_only_once(client: Client) -> None:
    code = await approve(client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    first, _, _ = await token_call(client, **form)
    second, body, _ = await token_call(client, **form)
    assert (first, second) == (200, 400)
    assert body["error"] == "invalid_grant"


async def test_a_replayed_code_revokes_what_the_first_exchange_issued(client: Client) -> None:
    code = await approve(client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    _, pair, _ = await token_call(client, **form)
    await token_call(client, **form)
    assert (await api_status(client, pair["access_token"]))[0] == 401
    assert (await refresh(client, pair["refresh_token"]))[1]["error"] == "invalid_grant"


async def test_a_code_with_another_redirect_uri_answers_invalid_grant(client: Client) -> None:
    code = await approve(client)
    status, body, _ = await token_call(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri="https://evil.example/callback",
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_code_older_than_ten_minutes_answers_invalid_grant(
    client: Client, state: EmulatorState
) -> None:
    state.clock = clock = FakeClock()
    code = await approve(client)
    clock.now += 601
    status, body, _ = await token_call(
        client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI
    )
    assert (status, body["error"]) == (400, "invalid_grant")


# ---- the token endpoint: request and client checks -----------------------------


async def test_a_wrong_client_secret_answers_401_invalid_client(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    status, body, _ = await token_call(
        client,
        client_secret="wrong",
        grant_type="refresh_token",
        refresh_token=str(pair["refresh_token"]),
    )
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["error_description"]


async def test_http_basic_client_authentication_is_accepted(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    form = {"grant_type": "refresh_token", "refresh_token": str(pair["refresh_token"])}
    credentials = base64.b64encode(b"emulator-client:emulator-secret").decode()
    headers = {"Authorization": f"Basic {credentials}"}
    status, _, _ = await fetch(client, "POST", "/oauth2/access_token", data=form, headers=headers)
    assert status == 200


async def test_wrong_basic_credentials_answer_401_with_a_basic_challenge(client: Client) -> None:
    credentials = base64.b64encode(b"emulator-client:nope").decode()
    status, body, response = await fetch(
        client,
        "POST",
        "/oauth2/access_token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_json_body_at_the_token_endpoint_answers_invalid_request(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    status, body, _ = await fetch(
        client,
        "POST",
        "/oauth2/access_token",
        json={
            **CLIENT_CREDENTIALS,
            "grant_type": "refresh_token",
            "refresh_token": pair["refresh_token"],
        },
    )
    assert (status, body["error"]) == (400, "invalid_request")
    assert (await refresh(client, pair["refresh_token"]))[0] == 200  # nothing consumed


async def test_an_unknown_grant_type_answers_unsupported_grant_type(client: Client) -> None:
    status, body, _ = await token_call(client, grant_type="password")
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_a_repeated_parameter_answers_invalid_request(client: Client) -> None:
    form = [*CLIENT_CREDENTIALS.items(), ("grant_type", "refresh_token")] * 2
    status, body, _ = await fetch(client, "POST", "/oauth2/access_token", data=form)
    assert (status, body["error"]) == (400, "invalid_request")


# ---- the token endpoint: refresh ------------------------------------------------


async def test_a_refresh_returns_a_new_pair_with_a_rotated_refresh_token(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    status, body = await refresh(client, pair["refresh_token"])
    assert status == 200
    assert body["refresh_token"] != pair["refresh_token"]
    assert body["access_token"] != pair["access_token"]


async def test_a_used_refresh_token_answers_invalid_grant(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    await refresh(client, pair["refresh_token"])
    status, body = await refresh(client, pair["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_without_rotation_a_refresh_returns_the_same_still_usable_refresh_token(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.rotate_refresh_tokens = False
    pair = state.issue_pair()
    first = await refresh(client, pair["refresh_token"])
    second = await refresh(client, pair["refresh_token"])
    assert first[0] == second[0] == 200
    assert first[1]["refresh_token"] == second[1]["refresh_token"] == pair["refresh_token"]


async def test_reusable_refresh_tokens_can_be_used_again(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.single_use_refresh_tokens = False
    pair = state.issue_pair()
    assert (await refresh(client, pair["refresh_token"]))[0] == 200
    assert (await refresh(client, pair["refresh_token"]))[0] == 200


async def test_exactly_one_of_100_concurrent_refreshes_with_one_token_succeeds(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.token_endpoint_delay_s = 0.05
    pair = state.issue_pair()
    results = await asyncio.gather(*(refresh(client, pair["refresh_token"]) for _ in range(100)))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 1
    assert statuses.count(400) == 99
    assert {body["error"] for status, body in results if status == 400} == {"invalid_grant"}


async def test_a_client_that_gives_up_during_the_delay_has_already_burned_its_token(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.token_endpoint_delay_s = 0.5
    pair = state.issue_pair()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(refresh(client, pair["refresh_token"]), timeout=0.1)
    settings.token_endpoint_delay_s = 0.0
    status, body = await refresh(client, pair["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_the_token_endpoint_delay_slows_every_answer(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.token_endpoint_delay_s = 0.2
    started = time.monotonic()
    await refresh(client, state.issue_pair()["refresh_token"])
    assert time.monotonic() - started >= 0.2


async def test_a_revoked_refresh_token_answers_invalid_grant(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    state.revoke_refresh_tokens()
    status, body = await refresh(client, pair["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_the_previous_access_token_answers_401_after_a_refresh(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    _, new = await refresh(client, pair["refresh_token"])
    assert await api_status(client, pair["access_token"]) == (
        401,
        {"type": "authentication_error", "detail": "Invalid token."},
    )
    assert (await api_status(client, new["access_token"]))[0] == 200


async def test_without_invalidation_the_previous_access_token_keeps_working(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.invalidate_old_access_tokens = False
    pair = state.issue_pair()
    await refresh(client, pair["refresh_token"])
    assert (await api_status(client, pair["access_token"]))[0] == 200


async def test_a_refresh_only_invalidates_its_own_authorizations_tokens(
    client: Client, state: EmulatorState
) -> None:
    mine, other = state.issue_pair(), state.issue_pair()
    await refresh(client, mine["refresh_token"])
    assert (await api_status(client, other["access_token"]))[0] == 200


# ---- access tokens at the API ------------------------------------------------------


async def test_an_access_token_expires_after_its_lifetime(
    client: Client, state: EmulatorState, settings: EmulatorSettings
) -> None:
    settings.access_token_lifetime_s = 0.2
    issued_at = time.monotonic()
    pair = state.issue_pair()
    assert pair["expires_in"] == 1  # rounded up, never 0
    assert (await api_status(client, pair["access_token"]))[0] == 200
    await asyncio.sleep(max(0.0, issued_at + 0.25 - time.monotonic()))
    assert await api_status(client, pair["access_token"]) == (
        401,
        {"type": "authentication_error", "detail": "Token expired."},
    )


async def test_expire_access_tokens_makes_every_issued_token_answer_401(
    client: Client, state: EmulatorState
) -> None:
    pairs = [state.issue_pair() for _ in range(3)]
    state.expire_access_tokens()
    for pair in pairs:
        assert (await api_status(client, pair["access_token"]))[0] == 401
    assert (await api_status(client, state.issue_pair()["access_token"]))[0] == 200


async def test_no_credentials_answer_401_with_a_bearer_challenge(client: Client) -> None:
    status, body, response = await fetch(client, "GET", "/public/v1/documents")
    assert status == 401
    assert body == {
        "type": "authentication_error",
        "detail": "Authentication credentials were not provided.",
    }
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_unknown_token_answers_invalid_token(client: Client) -> None:
    status, body = await api_status(client, "made-up")
    assert (status, body["detail"]) == (401, "Invalid token.")


async def test_an_api_key_is_accepted_only_when_configured(
    client: Client, settings: EmulatorSettings
) -> None:
    headers = {"Authorization": "API-Key s3cret"}
    assert (await fetch(client, "GET", "/public/v1/documents", headers=headers))[0] == 401
    settings.api_key = "s3cret"
    assert (await fetch(client, "GET", "/public/v1/documents", headers=headers))[0] == 200


def test_issued_tokens_are_long_random_and_distinct() -> None:
    state = EmulatorState()
    pairs = [state.issue_pair() for _ in range(200)]
    tokens = [str(p[k]) for p in pairs for k in ("access_token", "refresh_token")]
    assert len(set(tokens)) == len(tokens)
    assert min(map(len, tokens)) >= 40
