"""Specification of the PandaDoc emulator, the upstream every proxy test talks to.

Each test states one behaviour in its name. They run against a real socket
through pytest-aiohttp's ``aiohttp_client``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.emulator import EMULATOR_STATE, EmulatorSettings, EmulatorState, create_emulator_app
from proxy.emulator.documents import PROCESSING_S
from proxy.emulator.pdf import render_pdf
from proxy.emulator.testing import GZIP_BODY, GZIP_JSON, download_bytes_sha256, download_chunks

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]

CLIENT_CREDENTIALS = {"client_id": "emulator-client", "client_secret": "emulator-secret"}
REDIRECT_URI = "https://app.example/callback?tenant=7"
SEEDED_IDS = {"A7bqWzJk3fTNm8xYpRv2Lc", "Qh4sDn9KeU6tBw2ZgXy5Mo", "Vr8cLp3JaN7wEf5TkYq1Hs"}


# ---- fixtures and helpers ------------------------------------------------------


@pytest.fixture
def settings() -> EmulatorSettings:
    return EmulatorSettings()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: EmulatorSettings
) -> Client:
    return await aiohttp_client(create_emulator_app(settings))


@pytest.fixture
def state(client: Client) -> EmulatorState:
    return client.app[EMULATOR_STATE]


class FakeClock:
    """A monotonic clock the test moves by hand, to skip long lifetimes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


async def fetch(
    client: Client, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Status, decoded body (JSON when it is JSON), and the released response."""
    async with client.request(method, path, **kwargs) as response:
        raw = await response.read()
        body: Any = raw
        if response.content_type == "application/json" and raw:
            body = json.loads(raw)
        return response.status, body, response


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


# ---- fault injection, counters and control routes ------------------------------------


async def test_fail_token_endpoint_fails_the_next_calls_without_consuming_anything(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    state.fail_token_endpoint(2, status=503)
    first = await refresh(client, pair["refresh_token"])
    second = await refresh(client, pair["refresh_token"])
    third = await refresh(client, pair["refresh_token"])
    assert first == second == (503, {"error": "server_error"})
    assert third[0] == 200


async def test_the_counters_record_token_calls_errors_401s_and_api_requests(
    client: Client, state: EmulatorState
) -> None:
    pair = state.issue_pair()
    state.fail_token_endpoint(1)
    await refresh(client, pair["refresh_token"])  # injected 500
    await refresh(client, pair["refresh_token"])  # 200
    await refresh(client, pair["refresh_token"])  # used: invalid_grant
    await token_call(client, grant_type="password")
    await api_status(client, "nope")
    await fetch(client, "GET", "/test/echo", headers=bearer(pair["access_token"]))  # superseded
    assert state.token_calls == {"refresh_token": 3, "password": 1}
    assert state.token_errors == {
        "server_error": 1,
        "invalid_grant": 1,
        "unsupported_grant_type": 1,
    }
    assert (state.unauthorized_responses, state.api_requests) == (2, 2)
    stats = state.stats()
    assert stats["token_calls"] == {"password": 1, "refresh_token": 3}
    json.dumps(stats)


async def test_a_deliberate_401_from_the_test_routes_is_counted_too(
    client: Client, state: EmulatorState
) -> None:
    token = state.issue_pair()["access_token"]
    status, _, _ = await fetch(client, "GET", "/test/status/401", headers=bearer(token))
    assert (status, state.unauthorized_responses) == (401, 1)


async def test_the_control_routes_steer_the_emulator_over_http(client: Client) -> None:
    status, pair, _ = await fetch(client, "POST", "/_emulator/tokens")
    assert status == 200
    assert (await api_status(client, pair["access_token"]))[0] == 200
    assert (await fetch(client, "POST", "/_emulator/expire"))[0] == 204
    assert (await api_status(client, pair["access_token"]))[0] == 401
    params = {"times": "1", "status": "502"}
    assert (await fetch(client, "POST", "/_emulator/fail-token-endpoint", params=params))[0] == 200
    assert (await refresh(client, pair["refresh_token"]))[0] == 502
    assert (await fetch(client, "POST", "/_emulator/revoke"))[0] == 204
    assert (await refresh(client, pair["refresh_token"]))[1]["error"] == "invalid_grant"
    _, stats, _ = await fetch(client, "GET", "/_emulator/stats")
    assert stats["token_calls"] == {"refresh_token": 2}
    assert stats["unauthorized_responses"] == 1
    assert (await fetch(client, "DELETE", "/_emulator/stats"))[0] == 204
    assert (await fetch(client, "GET", "/_emulator/stats"))[1]["token_calls"] == {}


async def test_patch_settings_changes_the_running_emulator(
    client: Client, settings: EmulatorSettings
) -> None:
    changes = {"token_endpoint_delay_s": 0.25, "auto_approve": True, "api_key": "k"}
    status, body, _ = await fetch(client, "PATCH", "/_emulator/settings", json=changes)
    assert status == 200
    assert body["token_endpoint_delay_s"] == 0.25
    assert (settings.token_endpoint_delay_s, settings.auto_approve, settings.api_key) == (
        0.25,
        True,
        "k",
    )


@pytest.mark.parametrize(
    "patch",
    [
        {"auto_approve": True, "colour": "blue"},
        {"auto_approve": "yes"},
        {"auto_approve": True, "access_token_lifetime_s": -1},
        ["auto_approve"],
    ],
)
async def test_patch_settings_rejects_bad_changes_and_changes_nothing(
    client: Client, settings: EmulatorSettings, patch: object
) -> None:
    before = EmulatorSettings(**vars(settings))
    status, body, _ = await fetch(client, "PATCH", "/_emulator/settings", json=patch)
    assert (status, body["type"]) == (400, "request_error")
    assert settings == before


async def test_the_index_page_lists_the_routes(client: Client) -> None:
    status, body, _ = await fetch(client, "GET", "/")
    assert status == 200
    for path in ("/oauth2/access_token", "/public/v1/documents/{id}/download", "/_emulator/stats"):
        assert path.encode() in body


# ---- the documents API -----------------------------------------------------------


@pytest.fixture
def auth(state: EmulatorState) -> dict[str, str]:
    return bearer(state.issue_pair()["access_token"])


async def test_the_document_list_has_the_seeded_documents_in_pandadocs_shape(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, _ = await fetch(client, "GET", "/public/v1/documents", headers=auth)
    assert status == 200
    assert {doc["id"] for doc in body["results"]} == SEEDED_IDS
    for doc in body["results"]:
        assert set(doc) == {
            "id",
            "name",
            "status",
            "date_created",
            "date_modified",
            "expiration_date",
            "version",
        }
        assert doc["status"].startswith("document.")
        assert doc["date_created"].endswith("Z")


async def test_the_document_list_filters_by_status_and_query_and_paginates(
    client: Client, auth: dict[str, str]
) -> None:
    async def names(**params: str) -> list[str]:
        _, body, _ = await fetch(client, "GET", "/public/v1/documents", params=params, headers=auth)
        return [doc["name"] for doc in body["results"]]

    assert await names(status="2") == ["Invoice #1001"]
    assert await names(status="document.sent") == ["Service agreement - Acme Corp"]
    assert await names(q="AGREEMENT") == ["Service agreement - Acme Corp"]
    assert await names(order_by="name", count="2", page="2") == ["Welcome to the PandaDoc emulator"]
    assert (await fetch(client, "GET", "/public/v1/documents?count=0", headers=auth))[0] == 400


async def test_creating_a_document_from_a_template_answers_201_uploaded(
    client: Client, auth: dict[str, str]
) -> None:
    request = {
        "name": "Quote for Bob",
        "template_uuid": "tpl123",
        "recipients": [{"email": "bob@example.com", "first_name": "Bob", "role": "Client"}],
    }
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", json=request, headers=auth
    )
    assert status == 201
    assert body["name"] == "Quote for Bob"
    assert body["status"] == "document.uploaded"
    assert body["uuid"] == body["id"]
    assert body["links"][0]["href"].endswith(f"/public/v1/documents/{body['id']}")
    _, details, _ = await fetch(
        client, "GET", f"/public/v1/documents/{body['id']}/details", headers=auth
    )
    assert details["template"]["id"] == "tpl123"
    assert details["recipients"][0]["email"] == "bob@example.com"


async def test_an_uploaded_document_turns_draft_once_processed(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    _, created, _ = await fetch(
        client,
        "POST",
        "/public/v1/documents",
        json={"url": "https://x.example/a.pdf"},
        headers=auth,
    )
    path = f"/public/v1/documents/{created['id']}"
    assert (await fetch(client, "GET", path, headers=auth))[1]["status"] == "document.uploaded"
    clock.now += PROCESSING_S
    assert (await fetch(client, "GET", path, headers=auth))[1]["status"] == "document.draft"


async def test_a_pdf_upload_creates_a_document_named_from_its_data_part(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    pdf = render_pdf("Contract")
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename="contract.pdf", content_type="application/pdf")
    form.add_field("data", json.dumps({"name": "Signed contract", "recipients": []}))
    status, body, _ = await fetch(client, "POST", "/public/v1/documents", data=form, headers=auth)
    assert (status, body["name"], body["status"]) == (201, "Signed contract", "document.uploaded")
    stored = state.documents.get(body["id"])
    assert stored is not None
    assert stored.file_sha256 == hashlib.sha256(pdf).hexdigest()


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"name": "no source"}', b'{"url": "u", "recipients": 3}']
)
async def test_a_bad_create_request_answers_request_error(
    client: Client, auth: dict[str, str], body: bytes
) -> None:
    status, answer, _ = await fetch(
        client,
        "POST",
        "/public/v1/documents",
        data=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert status == 400
    assert answer["type"] == "request_error"
    assert answer["detail"]


async def test_document_status_and_details_have_pandadocs_fields(
    client: Client, auth: dict[str, str]
) -> None:
    doc_id = "Vr8cLp3JaN7wEf5TkYq1Hs"
    _, doc_status, _ = await fetch(client, "GET", f"/public/v1/documents/{doc_id}", headers=auth)
    assert doc_status["status"] == "document.completed"
    assert {"uuid", "date_completed", "version", "expiration_date"} <= set(doc_status)
    _, details, _ = await fetch(
        client, "GET", f"/public/v1/documents/{doc_id}/details", headers=auth
    )
    expected = {"created_by", "recipients", "grand_total", "metadata", "tokens", "fields", "tags"}
    assert expected <= set(details)
    assert details["grand_total"] == {"amount": "0.00", "currency": "USD"}
    assert details["recipients"][0]["has_completed"] is True


async def test_download_answers_a_valid_pdf(client: Client, auth: dict[str, str]) -> None:
    status, body, response = await fetch(
        client, "GET", "/public/v1/documents/A7bqWzJk3fTNm8xYpRv2Lc/download", headers=auth
    )
    assert status == 200
    assert response.content_type == "application/pdf"
    assert body.startswith(b"%PDF-1.4")
    assert body.rstrip().endswith(b"%%EOF")
    xref_at = int(body.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert body[xref_at:].startswith(b"xref")
    assert "attachment" in response.headers["Content-Disposition"]


async def test_deleting_a_document_answers_204_then_404(
    client: Client, auth: dict[str, str]
) -> None:
    path = "/public/v1/documents/Qh4sDn9KeU6tBw2ZgXy5Mo"
    assert (await fetch(client, "DELETE", path, headers=auth))[0] == 204
    status, body, _ = await fetch(client, "GET", path, headers=auth)
    assert (status, body) == (404, {"type": "not_found", "detail": "Not found."})


async def test_an_unknown_document_answers_not_found(client: Client, auth: dict[str, str]) -> None:
    for suffix in ("", "/details", "/download"):
        path = f"/public/v1/documents/nope{suffix}"
        assert (await fetch(client, "GET", path, headers=auth))[0] == 404


# ---- the /test routes ---------------------------------------------------------------


async def test_the_test_routes_require_a_token(client: Client, state: EmulatorState) -> None:
    assert (await fetch(client, "GET", "/test/echo"))[0] == 401
    assert state.unauthorized_responses == 1


async def test_echo_reports_the_raw_path_the_headers_in_order_and_the_body_hash(
    client: Client, auth: dict[str, str]
) -> None:
    headers = [*auth.items(), ("X-Twice", "1"), ("x-other", "é"), ("X-Twice", "2")]
    status, body, _ = await fetch(
        client, "PATCH", "/test/echo/a%2Fb/c?x=1&x=%20", headers=headers, data=b"payload"
    )
    assert status == 200
    assert body["method"] == "PATCH"
    assert body["raw_path"] == "/test/echo/a%2Fb/c?x=1&x=%20"
    received = [tuple(pair) for pair in body["headers"]]
    ours = [pair for pair in received if pair[0].lower() in ("x-twice", "x-other")]
    assert ours == [("X-Twice", "1"), ("x-other", "é".encode().decode("latin-1")), ("X-Twice", "2")]
    assert body["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert body["body_length"] == 7


async def test_download_streams_the_requested_size_with_the_expected_hash(
    client: Client, auth: dict[str, str]
) -> None:
    size = 3 * 65536 + 123
    async with client.get("/test/download", params={"size": size}, headers=auth) as response:
        assert response.headers["Content-Length"] == str(size)
        digest, length = hashlib.sha256(), 0
        async for chunk in response.content.iter_chunked(65536):
            digest.update(chunk)
            length += len(chunk)
    assert length == size
    assert digest.hexdigest() == download_bytes_sha256(size)


def test_the_download_pattern_never_repeats_a_chunk() -> None:
    chunks = [bytes(chunk) for chunk in download_chunks(40 * 65536)]
    assert len(set(chunks)) == len(chunks) == 40
    assert download_bytes_sha256(0) == hashlib.sha256(b"").hexdigest()


async def test_upload_answers_the_hash_and_length_of_a_streamed_body(
    client: Client, auth: dict[str, str]
) -> None:
    parts = [bytes([i]) * 100_000 for i in range(5)]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    status, answer, _ = await fetch(client, "PUT", "/test/upload", data=body(), headers=auth)
    assert status == 200
    assert answer == {"sha256": hashlib.sha256(b"".join(parts)).hexdigest(), "length": 500_000}


async def test_slow_sends_nothing_before_the_delay(client: Client, auth: dict[str, str]) -> None:
    started = time.monotonic()
    async with client.get("/test/slow", params={"delay": "0.2"}, headers=auth) as response:
        headers_after = time.monotonic() - started
        await response.read()
    assert headers_after >= 0.2


async def test_slow_body_sends_headers_at_once_then_spaced_chunks(
    client: Client, auth: dict[str, str]
) -> None:
    started = time.monotonic()
    params = {"chunks": "2", "interval": "0.25"}
    async with client.get("/test/slow-body", params=params, headers=auth) as response:
        headers_after = time.monotonic() - started
        body = await response.read()
    assert headers_after < 0.25
    assert time.monotonic() - started >= 0.5
    assert body == b"chunk 0\nchunk 1\n"


async def test_status_answers_the_requested_status_and_location(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, response = await fetch(
        client,
        "GET",
        "/test/status/307",
        params={"location": "/test/echo"},
        headers=auth,
        allow_redirects=False,
    )
    assert (status, body) == (307, {"status": 307})
    assert response.headers["Location"] == "/test/echo"
    status, body, _ = await fetch(client, "GET", "/test/status/204", headers=auth)
    assert (status, body) == (204, b"")


async def test_cookies_come_as_two_separate_set_cookie_headers(
    client: Client, auth: dict[str, str]
) -> None:
    _, _, response = await fetch(client, "GET", "/test/cookies", headers=auth)
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


async def test_gzip_sends_precompressed_bytes_with_their_length(
    client: Client, auth: dict[str, str]
) -> None:
    async with client.get("/test/gzip", headers=auth, auto_decompress=False) as response:
        raw = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(GZIP_BODY))
    assert raw == GZIP_BODY
    assert json.loads(gzip.decompress(raw)) == GZIP_JSON


async def test_hop_by_hop_headers_reach_the_socket_as_written(
    client: Client, auth: dict[str, str]
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"GET /test/hop-by-hop HTTP/1.1\r\nHost: emulator\r\n"
            + f"Authorization: {auth['Authorization']}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert head[0] == "HTTP/1.1 200 OK"
    assert {"Connection: X-Hop-Custom", "X-Hop-Custom: 1", "Keep-Alive: timeout=5"} <= set(head)
    assert "X-End-To-End: 1" in head


def test_the_command_line_flags_map_to_settings() -> None:
    import argparse

    from proxy.emulator.options import add_emulator_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    parse_args = parser.parse_args
    args = parse_args(["--port", "9000", "--auto-approve", "--no-rotate", "--api-key", "k"])
    settings = settings_from_args(args)
    assert args.port == 9000
    assert (settings.auto_approve, settings.rotate_refresh_tokens, settings.api_key) == (
        True,
        False,
        "k",
    )
    assert settings_from_args(parse_args([])) == EmulatorSettings()
