"""The documents API over plain HTTP: shapes, filters, state and its life cycle, uploads.

The SDK tests check the shapes operation by operation; these check behaviour: what a
list returns for each filter, how a document moves from uploaded to completed, and what
PandaDoc answers on the way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp
import pytest

from proxy.emulator import EmulatorSettings, EmulatorState
from proxy.emulator.pdf import render_pdf

from .emulator_helpers import (
    COMPLETED_ID,
    DRAFT_ID,
    FOLDER_ID,
    SEEDED_IDS,
    SENT_ID,
    TEMPLATE_ID,
    Client,
    FakeClock,
    fetch,
    wait_until,
)

DOCS = "/public/v1/documents"
BOB = {"email": "bob@example.com", "first_name": "Bob", "last_name": "Builder", "role": "Client"}


@pytest.fixture
def settings() -> EmulatorSettings:
    # Created documents are ready at once unless a test asks for processing time.
    return EmulatorSettings(document_processing_s=0.0)


async def create(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    request = {"name": "Quote for Bob", "template_uuid": TEMPLATE_ID, "recipients": [BOB]}
    status, body, _ = await fetch(client, "POST", DOCS, json={**request, **fields}, headers=auth)
    assert status == 201, body
    return dict(body)


async def names(client: Client, auth: dict[str, str], **params: str) -> list[str]:
    status, body, _ = await fetch(client, "GET", DOCS, params=params, headers=auth)
    assert status == 200, body
    return [doc["name"] for doc in body["results"]]


# ---- the list ---------------------------------------------------------------------------


async def test_the_document_list_has_the_seeded_documents_in_pandadocs_shape(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, _ = await fetch(client, "GET", DOCS, headers=auth)
    assert status == 200
    assert {doc["id"] for doc in body["results"]} == SEEDED_IDS
    for doc in body["results"]:
        assert set(doc) == {
            "id",
            "name",
            "status",
            "date_created",
            "date_modified",
            "date_completed",
            "expiration_date",
            "version",
        }
        assert doc["status"].startswith("document.")
        assert doc["date_created"].endswith("Z")


async def test_the_document_list_filters_by_status_and_query_and_paginates(
    client: Client, auth: dict[str, str]
) -> None:
    assert await names(client, auth, status="2") == ["Invoice #1001"]
    assert await names(client, auth, status="document.sent") == ["Service agreement - Acme Corp"]
    assert await names(client, auth, q="AGREEMENT") == ["Service agreement - Acme Corp"]
    assert await names(client, auth, order_by="name", count="2", page="2") == [
        "Welcome to the PandaDoc emulator"
    ]


async def test_the_document_list_filters_by_tag_template_folder_metadata_and_exclusion(
    client: Client, auth: dict[str, str]
) -> None:
    assert await names(client, auth, tag="agreement") == ["Service agreement - Acme Corp"]
    assert await names(client, auth, template_id=TEMPLATE_ID) == ["Service agreement - Acme Corp"]
    assert await names(client, auth, folder_uuid=FOLDER_ID) == ["Invoice #1001"]
    assert await names(client, auth, metadata_invoice_number="1001") == ["Invoice #1001"]
    assert await names(client, auth, status__ne="0", order_by="name") == [
        "Invoice #1001",
        "Service agreement - Acme Corp",
    ]
    assert await names(client, auth, id=DRAFT_ID) == ["Welcome to the PandaDoc emulator"]


async def test_the_document_list_filters_by_dates(client: Client, auth: dict[str, str]) -> None:
    window = {"created_from": "2024-01-16T00:00:00Z", "created_to": "2024-01-16T23:59:59Z"}
    assert await names(client, auth, **window) == ["Service agreement - Acme Corp"]
    assert await names(client, auth, completed_from="2024-01-18T00:00:00+00:00") == [
        "Invoice #1001"
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"count": "0"}, "count"),
        ({"count": "many"}, "count"),
        ({"page": "0"}, "page"),
        ({"status": "document.nope"}, "status"),
        ({"order_by": "colour"}, "order_by"),
        ({"created_from": "yesterday"}, "created_from"),
    ],
)
async def test_a_bad_list_parameter_is_a_400_naming_it(
    client: Client, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    status, body, _ = await fetch(client, "GET", DOCS, params=params, headers=auth)
    assert (status, body["type"], list(body["detail"])) == (400, "request_error", [field])


# ---- creating ---------------------------------------------------------------------------


async def test_creating_a_document_from_a_template_answers_201_uploaded(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    body = await create(client, auth, fields={"Company.Name": {"value": "Bob Ltd"}})
    assert (body["name"], body["status"], body["uuid"]) == (
        "Quote for Bob",
        "document.uploaded",
        body["id"],
    )
    assert body["links"][0]["href"].endswith(f"{DOCS}/{body['id']}")
    doc = state.documents.get(body["id"])
    assert doc is not None
    assert doc.template == {"id": TEMPLATE_ID, "name": "Service agreement template"}
    assert [(f.name, f.value) for f in doc.fields] == [
        ("Company.Name", "Bob Ltd"),
        ("Signature", ""),
    ]


async def test_a_recipient_becomes_a_contact_of_the_workspace(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    body = await create(client, auth)
    doc = state.documents.get(body["id"])
    assert doc is not None
    contact = state.contacts.get(doc.recipients[0].contact_id)
    assert contact is not None
    assert (contact.email, contact.first_name) == ("bob@example.com", "Bob")


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"url": "https://example.com/a.pdf"}, "name"),
        ({"name": "No source"}, "template_uuid"),
        ({"template_uuid": "nope", "recipients": []}, "template_uuid"),
        ({"template_uuid": TEMPLATE_ID}, "recipients"),
        ({"name": "x", "url": "not a url"}, "url"),
        ({"name": "x", "url": "https://e.example/a.pdf", "recipients": 3}, "recipients"),
        ({"name": "x", "url": "https://e.example/a.pdf", "tags": "t"}, "tags"),
        ({"name": "x", "url": "https://e.example/a.pdf", "folder_uuid": "nope"}, "folder_uuid"),
        ({"template_uuid": TEMPLATE_ID, "recipients": [{"first_name": "Nobody"}]}, "recipients"),
        ({"template_uuid": TEMPLATE_ID, "recipients": [{**BOB, "role": "Boss"}]}, "recipients"),
    ],
)
async def test_a_create_with_a_wrong_field_is_a_400_that_names_it(
    client: Client, auth: dict[str, str], request_body: dict[str, Any], field: str
) -> None:
    status, body, _ = await fetch(client, "POST", DOCS, json=request_body, headers=auth)
    assert status == 400
    assert body["type"] == "validation_error"
    assert field in body["detail"], body


async def test_a_create_without_a_name_says_that_name_is_required(
    client: Client, auth: dict[str, str]
) -> None:
    request = {"url": "https://example.com/contract.pdf"}
    status, body, _ = await fetch(client, "POST", DOCS, json=request, headers=auth)
    assert (status, body["detail"]) == (400, {"name": ["This field is required."]})


@pytest.mark.parametrize("body", [b"{not json", b""])
async def test_a_create_that_is_not_json_is_a_request_error(
    client: Client, auth: dict[str, str], body: bytes
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    status, answer, _ = await fetch(client, "POST", DOCS, data=body, headers=headers)
    assert status == 400
    assert answer["type"] in ("request_error", "validation_error")
    assert answer["detail"]


async def test_a_create_in_another_media_type_is_a_415(
    client: Client, auth: dict[str, str]
) -> None:
    headers = {**auth, "Content-Type": "text/plain"}
    status, body, _ = await fetch(client, "POST", DOCS, data=b"name=x", headers=headers)
    assert (status, body["type"]) == (415, "request_error")


async def test_a_pdf_upload_creates_a_document_named_from_its_data_part(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    pdf = render_pdf("Contract")
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename="contract.pdf", content_type="application/pdf")
    form.add_field("data", json.dumps({"name": "Signed contract", "recipients": [BOB]}))
    status, body, _ = await fetch(client, "POST", DOCS, data=form, headers=auth)
    assert (status, body["name"], body["status"]) == (201, "Signed contract", "document.uploaded")
    stored = state.documents.get(body["id"])
    assert stored is not None
    assert stored.file_sha256 == hashlib.sha256(pdf).hexdigest()


async def test_a_pdf_upload_without_a_file_part_is_a_400_naming_it(
    client: Client, auth: dict[str, str]
) -> None:
    form = aiohttp.FormData()
    form.add_field("data", json.dumps({"name": "No file"}), content_type="application/json")
    status, body, _ = await fetch(client, "POST", DOCS, data=form, headers=auth)
    assert (status, body["detail"]) == (400, {"file": ["This field is required."]})


# ---- reading ------------------------------------------------------------------------------


async def test_document_status_and_details_have_pandadocs_fields(
    client: Client, auth: dict[str, str]
) -> None:
    _, doc_status, _ = await fetch(client, "GET", f"{DOCS}/{COMPLETED_ID}", headers=auth)
    assert doc_status["status"] == "document.completed"
    assert {"uuid", "date_completed", "version", "expiration_date"} <= set(doc_status)
    _, details, _ = await fetch(client, "GET", f"{DOCS}/{COMPLETED_ID}/details", headers=auth)
    expected = {"created_by", "recipients", "grand_total", "metadata", "tokens", "fields", "tags"}
    assert expected <= set(details)
    assert details["grand_total"] == {"amount": "0.00", "currency": "USD"}
    assert details["recipients"][0]["has_completed"] is True


async def test_the_fields_of_a_document_name_who_fills_them(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    doc_id = (await create(client, auth, fields={"Company.Name": {"value": "Bob Ltd"}}))["id"]
    status, body, _ = await fetch(client, "GET", f"{DOCS}/{doc_id}/fields", headers=auth)
    assert status == 200
    company, signature = body["fields"]
    assert (company["name"], company["value"], company["is_filled"]) == (
        "Company.Name",
        "Bob Ltd",
        True,
    )
    assert (signature["type"], signature["is_filled"]) == ("signature", False)
    assert company["assigned_to"]["email"] == "bob@example.com"
    assert set(company["layout"]) == {"page", "position", "style"}


async def test_download_answers_a_valid_pdf(client: Client, auth: dict[str, str]) -> None:
    status, body, response = await fetch(client, "GET", f"{DOCS}/{DRAFT_ID}/download", headers=auth)
    assert status == 200
    assert response.content_type == "application/pdf"
    assert body.startswith(b"%PDF-1.4")
    assert body.rstrip().endswith(b"%%EOF")
    xref_at = int(body.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert body[xref_at:].startswith(b"xref")
    assert "attachment" in response.headers["Content-Disposition"]


async def test_only_a_completed_document_has_a_protected_download(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, _ = await fetch(
        client, "GET", f"{DOCS}/{SENT_ID}/download-protected", headers=auth
    )
    assert (status, body["status"]) == (409, "document.sent")


async def test_head_on_a_get_operation_answers_its_headers_without_a_body(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, response = await fetch(client, "HEAD", f"{DOCS}/{SENT_ID}", headers=auth)
    assert (status, body, response.content_type) == (200, b"", "application/json")


async def test_an_unknown_document_answers_not_found(client: Client, auth: dict[str, str]) -> None:
    for suffix in ("", "/details", "/download", "/fields"):
        status, body, _ = await fetch(client, "GET", f"{DOCS}/nope{suffix}", headers=auth)
        assert (status, body) == (404, {"type": "not_found", "detail": "Not found."})


# ---- the life cycle -----------------------------------------------------------------------


async def test_an_uploaded_document_turns_draft_once_processed(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    state.settings.document_processing_s = 1.0
    created = await create(client, auth)
    path = f"{DOCS}/{created['id']}"
    assert (await fetch(client, "GET", path, headers=auth))[1]["status"] == "document.uploaded"
    clock.now += state.settings.document_processing_s
    assert (await fetch(client, "GET", path, headers=auth))[1]["status"] == "document.draft"


async def test_a_document_being_processed_answers_409_to_details_fields_and_send(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = FakeClock()
    state.settings.document_processing_s = 1.0
    doc_id = (await create(client, auth))["id"]
    for method, suffix in (("GET", "/details"), ("GET", "/fields"), ("POST", "/send")):
        status, body, _ = await fetch(client, method, f"{DOCS}/{doc_id}{suffix}", headers=auth)
        assert (status, body["id"], body["status"]) == (409, doc_id, "document.uploaded")
        assert body["info_message"]


async def test_a_document_being_processed_answers_its_download_with_202_and_retry_after(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.clock = clock = FakeClock()
    state.settings.document_processing_s = 3
    doc_id = (await create(client, auth))["id"]
    clock.now += 0.5
    status, body, response = await fetch(client, "GET", f"{DOCS}/{doc_id}/download", headers=auth)
    assert (status, body, response.headers["Retry-After"]) == (202, b"", "3")
    clock.now += 3
    assert (await fetch(client, "GET", f"{DOCS}/{doc_id}/download", headers=auth))[0] == 200


async def test_a_document_is_processed_on_time_even_when_nobody_asks(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.settings.document_processing_s = 0.05
    doc_id = (await create(client, auth))["id"]
    stored = state.documents.get_even_deleted(doc_id)  # does not advance the document
    assert stored is not None
    await wait_until(lambda: stored.status != "document.uploaded")
    assert stored.status == "document.draft"


async def test_sending_a_draft_makes_it_sent_with_signing_links(
    client: Client, auth: dict[str, str]
) -> None:
    doc_id = (await create(client, auth))["id"]
    status, sent, _ = await fetch(client, "POST", f"{DOCS}/{doc_id}/send", json={}, headers=auth)
    assert (status, sent["status"]) == (200, "document.sent")
    assert sent["expiration_date"] is not None
    _, details, _ = await fetch(client, "GET", f"{DOCS}/{doc_id}/details", headers=auth)
    assert details["status"] == "document.sent"
    assert details["recipients"][0]["shared_link"] == sent["recipients"][0]["shared_link"]
    assert details["date_sent"] is not None


async def test_only_a_draft_can_be_sent(client: Client, auth: dict[str, str]) -> None:
    status, body, _ = await fetch(client, "POST", f"{DOCS}/{SENT_ID}/send", json={}, headers=auth)
    assert (status, body["type"]) == (400, "request_error")
    assert "document.draft" in body["detail"]


async def test_a_document_without_recipients_cannot_be_sent(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, _ = await fetch(client, "POST", f"{DOCS}/{DRAFT_ID}/send", json={}, headers=auth)
    assert (status, body["type"]) == (400, "request_error")


async def test_a_sent_document_completes_after_the_completion_delay(
    client: Client, state: EmulatorState, auth: dict[str, str]
) -> None:
    state.settings.document_completion_s = 0.05
    doc_id = (await create(client, auth))["id"]
    await fetch(client, "POST", f"{DOCS}/{doc_id}/send", json={}, headers=auth)
    stored = state.documents.get_even_deleted(doc_id)
    assert stored is not None
    await wait_until(lambda: stored.status == "document.completed")
    assert all(r.has_completed for r in stored.recipients)
    _, listed, _ = await fetch(client, "GET", DOCS, params={"id": doc_id}, headers=auth)
    assert listed["results"][0]["status"] == "document.completed"


async def test_the_control_api_completes_a_sent_document(
    client: Client, auth: dict[str, str]
) -> None:
    status, body, _ = await fetch(client, "POST", f"/_emulator/documents/{SENT_ID}/complete")
    assert (status, body["status"]) == (200, "document.completed")
    _, details, _ = await fetch(client, "GET", f"{DOCS}/{SENT_ID}/details", headers=auth)
    assert details["date_completed"] is not None
    assert details["recipients"][0]["has_completed"] is True


@pytest.mark.parametrize(
    ("doc_id", "code", "expected"),
    [
        (SENT_ID, 11, 204),  # sent -> voided
        (DRAFT_ID, 12, 204),  # draft -> declined
        (DRAFT_ID, 11, 409),  # a draft cannot expire
        (COMPLETED_ID, 2, 409),  # already completed
    ],
)
async def test_a_status_change_follows_pandadocs_table(
    client: Client, auth: dict[str, str], doc_id: str, code: int, expected: int
) -> None:
    path = f"{DOCS}/{doc_id}/status"
    status, _, _ = await fetch(client, "PATCH", path, json={"status": code}, headers=auth)
    assert status == expected


async def test_a_status_change_to_an_unknown_code_is_a_400(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"{DOCS}/{SENT_ID}/status"
    status, body, _ = await fetch(client, "PATCH", path, json={"status": 7}, headers=auth)
    assert (status, list(body["detail"])) == (400, ["status"])


async def test_a_session_is_only_for_a_sent_document(client: Client, auth: dict[str, str]) -> None:
    path = f"{DOCS}/{DRAFT_ID}/session"
    request = {"recipient": "jane@example.com"}
    status, body, _ = await fetch(client, "POST", path, json=request, headers=auth)
    assert (status, body["type"]) == (400, "state_error")


async def test_a_session_is_only_for_a_recipient_of_the_document(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"{DOCS}/{SENT_ID}/session"
    status, body, _ = await fetch(client, "POST", path, json={"recipient": "x@y.z"}, headers=auth)
    assert (status, list(body["detail"])) == (400, ["recipient"])


async def test_a_signing_link_marks_the_document_viewed_and_signing_completes_it(
    client: Client, auth: dict[str, str]
) -> None:
    doc_id = (await create(client, auth))["id"]
    _, sent, _ = await fetch(client, "POST", f"{DOCS}/{doc_id}/send", json={}, headers=auth)
    link = sent["recipients"][0]["shared_link"]
    path = link.removeprefix(str(client.make_url("")).rstrip("/"))
    status, page, _ = await fetch(client, "GET", path)
    assert status == 200
    assert b"Complete as Bob Builder" in page
    assert (await fetch(client, "GET", f"{DOCS}/{doc_id}", headers=auth))[1][
        "status"
    ] == "document.viewed"
    form = {"decision": "complete"}
    status, _, _ = await fetch(client, "POST", path, data=form, allow_redirects=False)
    assert status == 303
    _, doc, _ = await fetch(client, "GET", f"{DOCS}/{doc_id}", headers=auth)
    assert doc["status"] == "document.completed"


async def test_a_session_id_opens_the_signing_page_for_its_recipient(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"{DOCS}/{SENT_ID}/session"
    request = {"recipient": "jane@example.com"}
    _, session, _ = await fetch(client, "POST", path, json=request, headers=auth)
    status, page, _ = await fetch(client, "GET", f"/s/{session['id']}")
    assert status == 200
    assert b"Jane Roe" in page


# ---- deleting -----------------------------------------------------------------------------


async def test_deleting_a_document_answers_204_then_404(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"{DOCS}/{SENT_ID}"
    assert (await fetch(client, "DELETE", path, headers=auth))[0] == 204
    status, body, _ = await fetch(client, "GET", path, headers=auth)
    assert (status, body) == (404, {"type": "not_found", "detail": "Not found."})


async def test_a_deleted_document_is_listed_only_with_deleted_true(
    client: Client, auth: dict[str, str]
) -> None:
    await fetch(client, "DELETE", f"{DOCS}/{SENT_ID}", headers=auth)
    assert "Service agreement - Acme Corp" not in await names(client, auth)
    assert await names(client, auth, deleted="true") == ["Service agreement - Acme Corp"]


async def test_deleting_a_deleted_document_is_a_permissions_error(
    client: Client, auth: dict[str, str]
) -> None:
    path = f"{DOCS}/{SENT_ID}"
    await fetch(client, "DELETE", path, headers=auth)
    status, body, _ = await fetch(client, "DELETE", path, headers=auth)
    assert (status, body["type"]) == (403, "permissions_error")
