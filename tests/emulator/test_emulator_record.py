"""The record of every request the emulator received (``/_emulator/requests``)."""

from __future__ import annotations

import time

from proxy.emulator import EmulatorSettings, EmulatorState

from .emulator_helpers import SENT_ID, Client, FakeClock, fetch

DOCS = "/public/v1/documents"


async def test_every_request_is_recorded_with_its_time_method_path_headers_and_answer(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    before = time.time()
    await fetch(client, "GET", f"{DOCS}?q=a%20b&q=c", headers={**auth, "X-Trace": "1"})
    await fetch(client, "POST", "/test/echo", headers=auth, data=b"x")
    await fetch(client, "GET", "/nowhere")
    await fetch(client, "POST", "/oauth2/access_token", data={"grant_type": "refresh_token"})
    first, second, third, fourth = state.requests.select()
    assert before <= first.at <= second.at <= third.at <= time.time()
    assert (first.method, first.path, first.operation, first.status) == (
        "GET",
        f"{DOCS}?q=a%20b&q=c",
        "listDocuments",
        200,
    )
    assert ("X-Trace", "1") in first.headers
    assert ("Authorization", auth["Authorization"]) in first.headers
    assert (second.method, second.operation) == ("POST", None)
    assert (third.path, third.status) == ("/nowhere", 404)
    assert (fourth.operation, fourth.status) == ("accessToken", 401)


async def test_the_record_names_the_user_each_request_counted_against(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    other = {"Authorization": f"Bearer {state.issue_pair()['access_token']}"}
    await fetch(client, "GET", DOCS, headers=auth)
    await fetch(client, "GET", DOCS, headers=other)
    await fetch(client, "GET", DOCS)
    owners = [record.owner for record in state.requests.select()]
    assert owners[0] != owners[1]
    assert None not in owners[:2]
    assert owners[2] is None  # refused before it counted for anyone


async def test_the_control_api_lists_requests_since_a_seq_with_filters(
    client: Client, auth: dict[str, str]
) -> None:
    await fetch(client, "GET", DOCS, headers=auth)
    _, first, _ = await fetch(client, "GET", "/_emulator/requests")
    since = first["last_seq"]
    await fetch(client, "GET", f"{DOCS}/{SENT_ID}", headers=auth)
    await fetch(client, "POST", DOCS, json={}, headers=auth)
    params = {"since": str(since), "method": "GET"}
    _, later, _ = await fetch(client, "GET", "/_emulator/requests", params=params)
    assert [r["path"] for r in later["requests"]] == [f"{DOCS}/{SENT_ID}"]
    assert set(later["requests"][0]) == {
        "seq",
        "at",
        "monotonic",
        "method",
        "path",
        "headers",
        "operation",
        "owner",
        "status",
    }
    params = {"operation": "createDocument"}
    _, created, _ = await fetch(client, "GET", "/_emulator/requests", params=params)
    assert [r["status"] for r in created["requests"]] == [400]


async def test_control_requests_are_not_recorded_and_delete_forgets_the_record(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    await fetch(client, "GET", DOCS, headers=auth)
    await fetch(client, "GET", "/_emulator/stats")
    assert [r.path for r in state.requests.select()] == [DOCS]
    assert (await fetch(client, "DELETE", "/_emulator/requests"))[0] == 204
    _, body, _ = await fetch(client, "GET", "/_emulator/requests")
    assert (body["requests"], body["last_seq"]) == ([], 1)


async def test_the_record_keeps_the_newest_requests_up_to_its_size(
    client: Client, settings: EmulatorSettings, state: EmulatorState, auth: dict[str, str]
) -> None:
    settings.request_record_size = 3
    for page in range(1, 6):
        await fetch(client, "GET", f"{DOCS}?page={page}", headers=auth)
    assert [r.path for r in state.requests.select()] == [f"{DOCS}?page={p}" for p in (3, 4, 5)]


async def test_the_record_gives_the_most_requests_in_any_sliding_window(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    for moment in (0, 1, 5, 9.9, 10, 10.5, 30):
        clock.now = 1000.0 + moment
        await fetch(client, "GET", DOCS, headers=auth)
    await fetch(client, "GET", f"{DOCS}/{SENT_ID}", headers=auth)
    # [0, 10) holds 0, 1, 5, 9.9; [1, 11) holds 1, 5, 9.9, 10, 10.5: five.
    assert state.requests.most_in_window(10, operation="listDocuments") == 5
    assert state.requests.most_in_window(0.5, operation="listDocuments") == 2  # 9.9, 10
    assert state.requests.most_in_window(0.05, operation="listDocuments") == 1
    assert state.requests.most_in_window(10, operation="sendDocument") == 0
