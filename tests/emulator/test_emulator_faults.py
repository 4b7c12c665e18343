"""Faults on demand, per route: latency, error statuses, connection resets, 429s."""

from __future__ import annotations

import argparse
import time

import aiohttp
import pytest

from proxy.emulator import EmulatorSettings, EmulatorState
from proxy.emulator.faults import Fault, FaultError, parse_fault
from proxy.emulator.options import add_emulator_arguments, settings_from_args

from .emulator_helpers import SENT_ID, Client, fetch

DOCS = "/public/v1/documents"


async def add(client: Client, **rule: object) -> None:
    status, body, _ = await fetch(client, "POST", "/_emulator/faults", json=rule)
    assert status == 200, body


async def test_a_status_fault_answers_pandadocs_json_for_its_times_then_stops(
    client: Client, auth: dict[str, str]
) -> None:
    await add(client, match="listDocuments", kind="status", value=503, times=2)
    first = await fetch(client, "GET", DOCS, headers=auth)
    second = await fetch(client, "GET", DOCS, headers=auth)
    third = await fetch(client, "GET", DOCS, headers=auth)
    assert [first[0], second[0], third[0]] == [503, 503, 200]
    assert first[1] == {"type": "server_error", "detail": "A server error occurred."}
    assert (await fetch(client, "GET", "/_emulator/faults"))[1] == {"faults": []}


async def test_a_fault_matches_a_method_and_path_glob(client: Client, auth: dict[str, str]) -> None:
    await add(client, match="POST /public/v1/documents/*/send", kind="status", value=502)
    assert (await fetch(client, "GET", f"{DOCS}/{SENT_ID}", headers=auth))[0] == 200
    status, _, _ = await fetch(client, "POST", f"{DOCS}/{SENT_ID}/send", json={}, headers=auth)
    assert status == 502


async def test_a_double_star_glob_matches_any_depth(client: Client, auth: dict[str, str]) -> None:
    await add(client, match="* /public/**", kind="status", value=500)
    assert (await fetch(client, "GET", f"{DOCS}/{SENT_ID}/details", headers=auth))[0] == 500
    assert (await fetch(client, "GET", "/test/echo", headers=auth))[0] == 200


async def test_a_latency_fault_delays_the_answer_and_then_answers_as_usual(
    client: Client, auth: dict[str, str]
) -> None:
    await add(client, match="*", kind="latency", value=0.3, times=1)
    started = time.monotonic()
    status, body, _ = await fetch(client, "GET", f"{DOCS}/{SENT_ID}", headers=auth)
    assert time.monotonic() - started >= 0.3
    assert (status, body["id"]) == (200, SENT_ID)


async def test_a_reset_fault_drops_the_connection_without_an_answer(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    await add(client, match="GET /public/v1/documents", kind="reset", times=1)
    with pytest.raises(aiohttp.ClientOSError):
        await fetch(client, "GET", DOCS, headers=auth)
    [record] = state.requests.select(path_prefix=DOCS)
    assert record.status is None
    assert (await fetch(client, "GET", DOCS, headers=auth))[0] == 200


async def test_a_throttle_fault_answers_the_configured_429(
    client: Client, settings: EmulatorSettings, auth: dict[str, str]
) -> None:
    await fetch(client, "PATCH", "/_emulator/rate-limits", json={"retry_after": True})
    await add(client, match="statusDocument", kind="throttle", value=7)
    status, body, response = await fetch(client, "GET", f"{DOCS}/{SENT_ID}", headers=auth)
    assert (status, body) == (429, {"type": "throttled", "detail": "Request was throttled."})
    assert response.headers["Retry-After"] == "7"


async def test_the_token_endpoint_can_be_faulted_too(client: Client) -> None:
    await add(client, match="POST /oauth2/access_token", kind="status", value=504)
    status, _, _ = await fetch(client, "POST", "/oauth2/access_token", data={"grant_type": "x"})
    assert status == 504


async def test_control_routes_are_never_faulted(client: Client) -> None:
    await add(client, match="*", kind="status", value=500)
    assert (await fetch(client, "GET", "/_emulator/stats"))[0] == 200
    assert (await fetch(client, "DELETE", "/_emulator/faults"))[0] == 204


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"match": "GET documents", "kind": "reset"}, "match"),
        ({"match": "*", "kind": "explode"}, "kind"),
        ({"match": "*", "kind": "status", "value": 200}, "status"),
        ({"match": "*", "kind": "latency"}, "latency"),
        ({"match": "*", "kind": "reset", "times": 0}, "times"),
        ({"match": "*", "kind": "reset", "colour": "red"}, "colour"),
    ],
)
async def test_a_bad_fault_rule_is_a_400_that_says_what_is_wrong(
    client: Client, rule: dict[str, object], problem: str
) -> None:
    status, body, _ = await fetch(client, "POST", "/_emulator/faults", json=rule)
    assert status == 400
    assert problem in body["detail"]


async def test_faults_can_be_set_through_the_settings(
    client: Client, settings: EmulatorSettings, auth: dict[str, str]
) -> None:
    change = {"faults": [{"match": "listContacts", "kind": "status", "value": 500}]}
    assert (await fetch(client, "PATCH", "/_emulator/settings", json=change))[0] == 200
    assert settings.faults == [Fault("listContacts", "status", 500.0)]
    assert (await fetch(client, "GET", "/public/v1/contacts", headers=auth))[0] == 500


def test_the_command_line_takes_fault_rules() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    args = parser.parse_args(
        [
            "--fault",
            "match=POST /public/v1/documents/*/send,kind=status,value=503,times=2",
            "--fault",
            "match=*,kind=latency,value=0.5",
        ]
    )
    assert settings_from_args(args).faults == [
        Fault("POST /public/v1/documents/*/send", "status", 503.0, 2),
        Fault("*", "latency", 0.5),
    ]


def test_a_bad_fault_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault", "match=*,kind=status,value=abc"])
    assert "value must be a number" in capsys.readouterr().err


def test_a_fault_rule_without_name_value_pairs_does_not_parse() -> None:
    with pytest.raises(FaultError, match="NAME=VALUE"):
        parse_fault("reset")
