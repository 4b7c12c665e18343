"""Counters, control routes (``/_emulator``), settings and the command-line flags."""

from __future__ import annotations

import argparse
import json

import pytest

from proxy.emulator import EmulatorSettings, EmulatorState
from proxy.emulator.options import add_emulator_arguments, settings_from_args

from .emulator_helpers import Client, bearer, fetch
from .test_emulator_oauth import api_status, refresh, token_call

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


def test_the_command_line_flags_map_to_settings() -> None:

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
