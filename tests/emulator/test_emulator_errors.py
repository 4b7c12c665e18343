"""Errors as PandaDoc gives them: JSON on every route, the emulated ones and the others."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.emulator import EmulatorSettings, EmulatorState

from .emulator_helpers import DRAFT_ID, Client, bearer, fetch

MB = 1024 * 1024


async def test_no_credentials_answer_401_authentication_error_with_a_challenge(
    client: Client,
) -> None:
    status, body, response = await fetch(client, "GET", "/public/v1/templates")
    assert (status, body) == (
        401,
        {"type": "authentication_error", "detail": "Authentication credentials were not provided."},
    )
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_rejected_token_can_answer_403_with_the_same_body(
    client: Client, settings: EmulatorSettings
) -> None:
    settings.rejected_token_status = 403
    status, body, response = await fetch(client, "GET", "/public/v1/contacts", headers=bearer("x"))
    assert (status, body) == (403, {"type": "authentication_error", "detail": "Invalid token."})
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/public/v1/forms"),
        ("GET", "/public/v1/documents/abc/attachments"),
        ("POST", "/public/v1/nothing/here"),
        ("GET", "/favicon.ico"),
    ],
)
async def test_a_route_the_emulator_does_not_serve_is_pandadocs_json_404(
    client: Client, auth: dict[str, str], method: str, path: str
) -> None:
    status, body, response = await fetch(client, method, path, headers=auth)
    assert (status, response.content_type) == (404, "application/json")
    assert body == {"type": "not_found", "detail": "Not found."}


async def test_a_v2_route_answers_in_pandadocs_v2_shape(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"/public/v2/documents/{DRAFT_ID}/settings"
    status, body, _ = await fetch(client, "GET", path, headers=auth)
    assert (status, body) == (404, {"code": "not_found", "details": []})


async def test_a_method_a_route_does_not_take_is_a_json_405_with_allow(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, response = await fetch(client, "PUT", "/public/v1/members", headers=auth)
    assert (status, body) == (405, {"type": "request_error", "detail": 'Method "PUT" not allowed.'})
    assert "GET" in response.headers["Allow"]


async def test_wrong_fields_name_every_wrong_field_at_once(
    client: Client, auth: dict[str, str]
) -> None:
    request = {"name": "", "url": 7, "tags": [1], "recipients": [{"email": "a@b.c"}, {"email": 5}]}
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", json=request, headers=auth
    )
    assert status == 400
    assert body == {
        "type": "validation_error",
        "detail": {
            "url": ["Not a valid string."],
            "name": ["This field may not be blank."],
            "recipients": [{}, {"email": ["Not a valid string."]}],
            "tags": ["Not a valid string."],
        },
    }


async def test_a_body_that_is_not_an_object_says_so(client: Client, auth: dict[str, str]) -> None:
    status, body, _ = await fetch(client, "POST", "/public/v1/contacts", json=[1], headers=auth)
    assert (status, body["detail"]) == (
        400,
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    )


# ---- PandaDoc's body limits ---------------------------------------------------------------


def upload(size: int) -> aiohttp.FormData:
    form = aiohttp.FormData()
    pdf = io.BytesIO(b"%PDF-1.4\n" + b"0" * (size - 9))
    form.add_field("file", pdf, filename="big.pdf", content_type="application/pdf")
    form.add_field("data", json.dumps({"name": "Big"}), content_type="application/json")
    return form


async def test_a_5_mb_pdf_upload_is_accepted(client: Client, auth: dict[str, str]) -> None:
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", data=upload(5 * MB), headers=auth
    )
    assert (status, body["name"]) == (201, "Big")


@pytest.mark.slow
async def test_a_pdf_of_exactly_50_mb_is_accepted_and_one_byte_more_is_a_json_413(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    status, _, _ = await fetch(
        client, "POST", "/public/v1/documents", data=upload(50 * MB), headers=auth
    )
    assert status == 201
    before = len(state.documents.all())
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", data=upload(50 * MB + 1), headers=auth
    )
    assert (status, body["type"]) == (413, "request_error")
    assert "50 MB" in body["detail"]
    assert len(state.documents.all()) == before


def json_of(size: int) -> io.BytesIO:
    """A JSON create request of exactly ``size`` bytes."""
    head = b'{"name": "Padded", "url": "https://example.com/a.pdf", "metadata": {"pad": "'
    tail = b'"}}'
    return io.BytesIO(head + b"x" * (size - len(head) - len(tail)) + tail)


async def test_a_json_body_of_2_mb_is_accepted_and_one_byte_more_is_a_json_413(
    client: Client, auth: dict[str, str]
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    status, _, _ = await fetch(
        client, "POST", "/public/v1/documents", data=json_of(2 * MB), headers=headers
    )
    assert status == 201
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", data=json_of(2 * MB + 1), headers=headers
    )
    assert (status, body["type"]) == (413, "request_error")
    assert "2 MB" in body["detail"]


async def test_an_oversized_json_body_without_a_length_is_refused_while_it_streams(
    client: Client, auth: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "metadata": {"pad": "'
        for _ in range(3 * 16):
            yield b"x" * 65536

    headers = {**auth, "Content-Type": "application/json"}
    status, body, _ = await fetch(
        client, "POST", "/public/v1/documents", data=chunks(), headers=headers
    )
    assert (status, body["type"]) == (413, "request_error")
