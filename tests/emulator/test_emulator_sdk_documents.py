"""The documents family through PandaDoc's official Python SDK, one test per operation.

Each answer must deserialize into the SDK's model (the SDK checks every value's type) and
carry every field the model declares (``assert_complete``).
"""

from __future__ import annotations

import pytest
from pandadoc_client.api.document_recipients_api import DocumentRecipientsApi
from pandadoc_client.api.documents_api import DocumentsApi
from pandadoc_client.exceptions import NotFoundException
from pandadoc_client.model.document_create_by_template_request_tokens import (
    DocumentCreateByTemplateRequestTokens,
)
from pandadoc_client.model.document_create_link_request import DocumentCreateLinkRequest
from pandadoc_client.model.document_create_request import DocumentCreateRequest
from pandadoc_client.model.document_create_request_recipients import (
    DocumentCreateRequestRecipients,
)
from pandadoc_client.model.document_recipient_create_request import (
    DocumentRecipientCreateRequest,
)
from pandadoc_client.model.document_recipient_edit_request import DocumentRecipientEditRequest
from pandadoc_client.model.document_send_request import DocumentSendRequest
from pandadoc_client.model.document_status_change_request import DocumentStatusChangeRequest
from pandadoc_client.model.document_status_request_enum import DocumentStatusRequestEnum

from proxy.emulator import EmulatorSettings, EmulatorState

from .emulator_helpers import (
    COMPLETED_ID,
    CONTACT_ID,
    DRAFT_ID,
    SEEDED_IDS,
    SENT_ID,
    TEMPLATE_ID,
    Client,
    Sdk,
    assert_complete,
)


@pytest.fixture
def settings() -> EmulatorSettings:
    # Created documents are ready at once, so a test can go on to send them.
    return EmulatorSettings(document_processing_s=0.0)


def bob() -> DocumentCreateRequestRecipients:
    return DocumentCreateRequestRecipients(
        email="bob@example.com", first_name="Bob", last_name="Builder", role="Client"
    )


async def new_draft(sdk: Sdk) -> str:
    request = DocumentCreateRequest(
        name="Draft for Bob", template_uuid=TEMPLATE_ID, recipients=[bob()]
    )
    created = await sdk(DocumentsApi, "create_document", request)
    return str(created.id)


async def test_list_documents(sdk: Sdk) -> None:
    answer = await sdk(DocumentsApi, "list_documents", count=10, page=1, order_by="name")
    assert {doc.id for doc in answer.results} == SEEDED_IDS
    assert [doc.name for doc in answer.results] == sorted(doc.name for doc in answer.results)
    assert_complete(answer)


async def test_create_document(sdk: Sdk, client: Client) -> None:
    request = DocumentCreateRequest(
        name="Quote for Bob",
        template_uuid=TEMPLATE_ID,
        recipients=[bob()],
        tokens=[DocumentCreateByTemplateRequestTokens(name="Client.Company", value="Bob Ltd")],
        fields={"Company.Name": {"value": "Bob Ltd"}},
        metadata={"deal": "7"},
        tags=["api"],
    )
    created = await sdk(DocumentsApi, "create_document", request)
    assert (created.name, created.status.value) == ("Quote for Bob", "document.uploaded")
    assert created.links[0].href == str(client.make_url(f"/public/v1/documents/{created.id}"))
    assert_complete(created)


async def test_create_document_from_a_url(sdk: Sdk) -> None:
    request = DocumentCreateRequest(
        name="Contract", url="https://example.com/contract.pdf", recipients=[bob()]
    )
    created = await sdk(DocumentsApi, "create_document", request)
    assert created.status.value == "document.uploaded"
    assert_complete(created)


async def test_status_document(sdk: Sdk) -> None:
    answer = await sdk(DocumentsApi, "status_document", COMPLETED_ID)
    assert (answer.uuid, answer.status) == (COMPLETED_ID, "document.completed")
    assert_complete(answer)


async def test_details_document(sdk: Sdk) -> None:
    answer = await sdk(DocumentsApi, "details_document", SENT_ID)
    recipient = answer.recipients[0]
    assert (recipient.email, recipient.contact_id) == ("jane@example.com", CONTACT_ID)
    assert answer.template.id == TEMPLATE_ID
    assert_complete(answer)


async def test_details_document_of_a_document_from_a_template(sdk: Sdk) -> None:
    doc_id = await new_draft(sdk)
    answer = await sdk(DocumentsApi, "details_document", doc_id)
    assert answer.status == "document.draft"
    assert answer.recipients[0].role == "Client"
    assert [field["name"] for field in answer.fields] == ["Company.Name", "Signature"]
    assert_complete(answer)


async def test_send_document(sdk: Sdk, client: Client) -> None:
    doc_id = await new_draft(sdk)
    request = DocumentSendRequest(subject="Please sign", message="Thanks", silent=True)
    sent = await sdk(DocumentsApi, "send_document", doc_id, request)
    assert sent.status == "document.sent"
    assert sent.recipients[0].shared_link.startswith(str(client.make_url("/s/")))
    assert_complete(sent)
    assert (await sdk(DocumentsApi, "status_document", doc_id)).status == "document.sent"


async def test_download_document(sdk: Sdk) -> None:
    pdf = await sdk(DocumentsApi, "download_document", DRAFT_ID)
    with pdf:
        assert pdf.read().startswith(b"%PDF-1.4")


async def test_download_protected_document(sdk: Sdk) -> None:
    pdf = await sdk(DocumentsApi, "download_protected_document", COMPLETED_ID)
    with pdf:
        assert pdf.read().rstrip().endswith(b"%%EOF")


async def test_delete_document(sdk: Sdk) -> None:
    assert await sdk(DocumentsApi, "delete_document", DRAFT_ID) is None
    with pytest.raises(NotFoundException):
        await sdk(DocumentsApi, "status_document", DRAFT_ID)


async def test_change_document_status(sdk: Sdk) -> None:
    request = DocumentStatusChangeRequest(status=DocumentStatusRequestEnum(2), note="Signed")
    assert await sdk(DocumentsApi, "change_document_status", SENT_ID, request) is None
    assert (await sdk(DocumentsApi, "status_document", SENT_ID)).status == "document.completed"


async def test_create_document_link(sdk: Sdk) -> None:
    request = DocumentCreateLinkRequest(recipient="jane@example.com", lifetime=900.0)
    session = await sdk(DocumentsApi, "create_document_link", SENT_ID, request)
    assert len(session.id) == 22
    assert session.expires_at.endswith("Z")
    assert_complete(session)


async def test_add_document_recipient(sdk: Sdk, state: EmulatorState) -> None:
    request = DocumentRecipientCreateRequest(id=CONTACT_ID, kind="contact")
    answer = await sdk(DocumentRecipientsApi, "add_document_recipient", DRAFT_ID, request)
    doc = state.documents.get(DRAFT_ID)
    assert doc is not None
    added = doc.recipient(answer.recipient_id)
    assert added is not None
    assert (added.email, added.recipient_type) == ("jane@example.com", "CC")
    assert_complete(answer)


async def test_edit_document_recipient(sdk: Sdk) -> None:
    doc_id = await new_draft(sdk)
    recipient_id = (await sdk(DocumentsApi, "details_document", doc_id)).recipients[0].id
    request = DocumentRecipientEditRequest(first_name="Robert", email="robert@example.com")
    await sdk(DocumentRecipientsApi, "edit_document_recipient", doc_id, recipient_id, request)
    recipient = (await sdk(DocumentsApi, "details_document", doc_id)).recipients[0]
    assert (recipient.first_name, recipient.email) == ("Robert", "robert@example.com")


async def test_delete_document_recipient(sdk: Sdk) -> None:
    doc_id = await new_draft(sdk)
    recipient_id = (await sdk(DocumentsApi, "details_document", doc_id)).recipients[0].id
    await sdk(DocumentRecipientsApi, "delete_document_recipient", doc_id, recipient_id)
    assert (await sdk(DocumentsApi, "details_document", doc_id)).recipients == []
