"""PandaDoc's rate limits, emulated: per user and operation, over a sliding window."""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
import pytest

from proxy.emulator import EmulatorSettings, EmulatorState
from proxy.emulator.options import add_emulator_arguments, settings_from_args
from proxy.emulator.ratelimit import RateLimitSettings

from .emulator_helpers import SENT_ID, TEMPLATE_ID, Client, FakeClock, bearer, fetch

DOCS = "/public/v1/documents"
THROTTLED = {"type": "throttled", "detail": "Request was throttled."}


def limited(**fields: object) -> EmulatorSettings:
    return EmulatorSettings(rate_limits=RateLimitSettings(enabled=True, **fields))  # type: ignore[arg-type]


async def statuses(client: Client, auth: dict[str, str], n: int, path: str = DOCS) -> list[int]:
    return [(await fetch(client, "GET", path, headers=auth))[0] for _ in range(n)]


async def test_rate_limits_are_off_by_default(client: Client, auth: dict[str, str]) -> None:
    assert set(await statuses(client, auth, 30)) == {200}


@pytest.mark.parametrize("settings", [limited(limits={"listDocuments": 3})])
async def test_the_request_over_the_limit_gets_pandadocs_429_without_retry_after(
    client: Client, auth: dict[str, str]
) -> None:
    assert await statuses(client, auth, 3) == [200, 200, 200]
    status, body, response = await fetch(client, "GET", DOCS, headers=auth)
    assert (status, body) == (429, THROTTLED)
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    "settings", [limited(limits={"listDocuments": 1}, window_s=30, retry_after=True)]
)
async def test_retry_after_names_when_the_window_has_room_again(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    await fetch(client, "GET", DOCS, headers=auth)
    clock.now += 12.5
    status, body, response = await fetch(client, "GET", DOCS, headers=auth)
    assert (status, body, response.headers["Retry-After"]) == (429, THROTTLED, "18")


@pytest.mark.parametrize(
    "settings", [limited(limits={"listDocuments": 1}, window_s=30, detail="expected")]
)
async def test_the_expected_variant_names_the_seconds_in_its_detail(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    await fetch(client, "GET", DOCS, headers=auth)
    clock.now += 17
    _, body, response = await fetch(client, "GET", DOCS, headers=auth)
    assert body == {
        "type": "throttled",
        "detail": "Request was throttled. Expected available in 13 seconds.",
    }
    assert "Retry-After" not in response.headers
    clock.now += 12.5
    _, body, _ = await fetch(client, "GET", DOCS, headers=auth)
    assert body["detail"] == "Request was throttled. Expected available in 1 second."


@pytest.mark.parametrize("settings", [limited(limits={"listDocuments": 2}, window_s=10)])
async def test_the_window_slides_instead_of_resetting_at_fixed_boundaries(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()

    async def at(moment: float) -> int:
        clock.now = 1000.0 + moment
        return (await fetch(client, "GET", DOCS, headers=auth))[0]

    # Fixed ten-second buckets would allow 10.5 and 12 (a new bucket); a sliding window
    # still counts 6 and 10.5 at 12.
    assert [await at(t) for t in (0, 6, 9, 10.5, 12, 16.5)] == [200, 200, 429, 200, 429, 200]


@pytest.mark.parametrize("settings", [limited(limits={"listDocuments": 1}, window_s=60)])
async def test_throttled_requests_do_not_count_against_the_window(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()

    async def at(moment: float) -> int:
        clock.now = 1000.0 + moment
        return (await fetch(client, "GET", DOCS, headers=auth))[0]

    # Refused at 30 and 59: had they counted, the window would still be full at 60.5.
    assert [await at(t) for t in (0, 30, 59, 60.5)] == [200, 429, 429, 200]


@pytest.mark.parametrize("settings", [limited(limits={"listDocuments": 1, "statusDocument": 1})])
async def test_each_operation_has_its_own_window(client: Client, auth: dict[str, str]) -> None:
    assert await statuses(client, auth, 2) == [200, 429]
    assert await statuses(client, auth, 2, f"{DOCS}/{SENT_ID}") == [200, 429]


@pytest.mark.parametrize("settings", [limited(limits={"listDocuments": 1})])
async def test_each_user_has_its_own_window_and_a_refreshed_token_shares_its_users(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    assert await statuses(client, auth, 2) == [200, 429]
    other_user = bearer(state.issue_pair()["access_token"])
    assert await statuses(client, other_user, 1) == [200]
    pair = state.issue_pair()
    assert await statuses(client, bearer(pair["access_token"]), 1) == [200]
    refreshed = state.redeem_refresh_token(str(pair["refresh_token"]), "emulator-client")
    assert await statuses(client, bearer(refreshed["access_token"]), 1) == [429]


@pytest.mark.parametrize("settings", [limited(preset="sandbox")])
async def test_the_sandbox_preset_allows_10_per_window_for_every_operation(
    client: Client, auth: dict[str, str]
) -> None:
    assert await statuses(client, auth, 11, "/public/v1/contacts") == [200] * 10 + [429]
    assert await statuses(client, auth, 1, "/public/v1/members") == [200]


@pytest.mark.parametrize("settings", [limited(limits={"*": 2})])
async def test_a_star_limit_applies_to_every_operation_not_named(
    client: Client, auth: dict[str, str]
) -> None:
    assert await statuses(client, auth, 3, "/public/v1/members/current") == [200, 200, 429]


@pytest.mark.slow
@pytest.mark.parametrize("settings", [limited(preset="production")])
async def test_the_production_preset_tells_a_pdf_from_a_template_by_the_body(
    client: Client, auth: dict[str, str]
) -> None:
    by_url = {"name": "From a URL", "url": "https://example.com/a.pdf"}
    answers = await asyncio.gather(
        *(fetch(client, "POST", DOCS, json=by_url, headers=auth) for _ in range(301))
    )
    assert sorted(status for status, _, _ in answers) == [201] * 300 + [429]
    by_template = {"template_uuid": TEMPLATE_ID, "recipients": [{"email": "a@b.example"}]}
    assert (await fetch(client, "POST", DOCS, json=by_template, headers=auth))[0] == 201
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4 tiny", filename="a.pdf", content_type="application/pdf")
    form.add_field("data", json.dumps({"name": "Upload"}), content_type="application/json")
    # The upload is createDocumentFromUpload: the same row (300), its own operation.
    assert (await fetch(client, "POST", DOCS, data=form, headers=auth))[0] == 201


async def test_the_control_api_turns_limits_on_shows_use_and_resets(
    client: Client, auth: dict[str, str]
) -> None:
    change = {"enabled": True, "limits": {"listDocuments": 2}, "window_s": 5}
    status, body, _ = await fetch(client, "PATCH", "/_emulator/rate-limits", json=change)
    assert (status, body["enabled"], body["window_s"]) == (200, True, 5.0)
    assert await statuses(client, auth, 3) == [200, 200, 429]
    _, body, _ = await fetch(client, "GET", "/_emulator/rate-limits")
    [usage] = body["usage"].values()
    assert usage == {"listDocuments": 2}
    assert (await fetch(client, "DELETE", "/_emulator/rate-limits"))[0] == 204
    assert await statuses(client, auth, 1) == [200]


@pytest.mark.parametrize(
    "change",
    [{"enabled": "yes"}, {"window_s": 0}, {"preset": "lavish"}, {"limits": {"x": -1}}, {"n": 1}],
)
async def test_the_control_api_refuses_bad_rate_limit_settings_and_changes_nothing(
    client: Client, settings: EmulatorSettings, change: dict[str, object]
) -> None:
    before = settings.rate_limits
    status, body, _ = await fetch(client, "PATCH", "/_emulator/rate-limits", json=change)
    assert (status, body["type"]) == (400, "request_error")
    assert settings.rate_limits == before


async def test_the_settings_route_changes_rate_limits_in_part(
    client: Client, settings: EmulatorSettings
) -> None:
    change = {"rate_limits": {"enabled": True, "detail": "expected"}}
    status, body, _ = await fetch(client, "PATCH", "/_emulator/settings", json=change)
    assert status == 200
    assert body["rate_limits"]["window_s"] == 60.0
    assert (settings.rate_limits.enabled, settings.rate_limits.detail) == (True, "expected")


def test_the_command_line_turns_rate_limits_on() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    args = parser.parse_args(
        [
            "--rate-limits",
            "sandbox",
            "--rate-limit-window",
            "5",
            "--rate-limit",
            "listDocuments=3",
            "--rate-limit",
            "*=7",
            "--rate-limit-retry-after",
            "--rate-limit-detail",
            "expected",
        ]
    )
    assert settings_from_args(args).rate_limits == RateLimitSettings(
        enabled=True,
        preset="sandbox",
        window_s=5.0,
        limits={"listDocuments": 3, "*": 7},
        retry_after=True,
        detail="expected",
    )
    production = settings_from_args(parser.parse_args(["--rate-limits"])).rate_limits
    assert (production.enabled, production.preset) == (True, "production")


@pytest.mark.parametrize(
    "flags",
    [["--rate-limit", "listDocuments"], ["--rate-limit-window", "0"], ["--rate-limits", "lavish"]],
)
def test_a_bad_rate_limit_flag_is_a_usage_error(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(flags)
    assert exit_info.value.code == 2
    assert flags[0] in capsys.readouterr().err
