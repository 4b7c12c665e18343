"""Templates, contacts, members and folders through PandaDoc's official Python SDK, one test
per operation; every answer fills every field of its SDK model."""

from __future__ import annotations

import pytest
from pandadoc_client.api.contacts_api import ContactsApi
from pandadoc_client.api.folders_api_api import FoldersAPIApi
from pandadoc_client.api.members_api import MembersApi
from pandadoc_client.api.templates_api import TemplatesApi
from pandadoc_client.exceptions import NotFoundException
from pandadoc_client.model.contact_create_request import ContactCreateRequest
from pandadoc_client.model.contact_update_request import ContactUpdateRequest
from pandadoc_client.model.documents_folder_create_request import DocumentsFolderCreateRequest
from pandadoc_client.model.documents_folder_rename_request import DocumentsFolderRenameRequest

from .emulator_helpers import CONTACT_ID, FOLDER_ID, TEMPLATE_ID, Sdk, assert_complete

OWNER_MEMBERSHIP = "EmuMembership0000000001"

# ---- templates -------------------------------------------------------------------------


async def test_list_templates(sdk: Sdk) -> None:
    answer = await sdk(TemplatesApi, "list_templates", q="agreement", count=10)
    assert [template.id for template in answer.results] == [TEMPLATE_ID]
    assert_complete(answer)


async def test_details_template(sdk: Sdk) -> None:
    answer = await sdk(TemplatesApi, "details_template", TEMPLATE_ID)
    assert [role.name for role in answer.roles] == ["Client", "Sender"]
    assert_complete(answer)


async def test_delete_template(sdk: Sdk) -> None:
    await sdk(TemplatesApi, "delete_template", TEMPLATE_ID)
    with pytest.raises(NotFoundException):
        await sdk(TemplatesApi, "details_template", TEMPLATE_ID)


# ---- contacts --------------------------------------------------------------------------


async def test_create_contact(sdk: Sdk) -> None:
    request = ContactCreateRequest(email="sam@example.com", first_name="Sam", company="Sam & Co")
    answer = await sdk(ContactsApi, "create_contact", request)
    assert (answer.email, answer.company, answer.last_name) == ("sam@example.com", "Sam & Co", None)
    assert_complete(answer)


async def test_list_contacts(sdk: Sdk) -> None:
    answer = await sdk(ContactsApi, "list_contacts", email="jane@example.com")
    assert [contact.id for contact in answer.results] == [CONTACT_ID]
    assert_complete(answer)


async def test_details_contact(sdk: Sdk) -> None:
    answer = await sdk(ContactsApi, "details_contact", CONTACT_ID)
    assert (answer.first_name, answer.last_name) == ("Jane", "Roe")
    assert_complete(answer)


async def test_update_contact(sdk: Sdk) -> None:
    request = ContactUpdateRequest(job_title="CFO", city="Lisbon")
    answer = await sdk(ContactsApi, "update_contact", CONTACT_ID, request)
    assert (answer.job_title, answer.city, answer.email) == ("CFO", "Lisbon", "jane@example.com")
    assert_complete(answer)


async def test_delete_contact(sdk: Sdk) -> None:
    await sdk(ContactsApi, "delete_contact", CONTACT_ID)
    with pytest.raises(NotFoundException):
        await sdk(ContactsApi, "details_contact", CONTACT_ID)


# ---- members ---------------------------------------------------------------------------


async def test_list_members(sdk: Sdk) -> None:
    answer = await sdk(MembersApi, "list_members")
    assert [member.first_name for member in answer.results] == ["Emma", "Max"]
    assert_complete(answer)


async def test_details_current_member(sdk: Sdk) -> None:
    answer = await sdk(MembersApi, "details_current_member")
    assert (answer.membership_id, answer.role) == (OWNER_MEMBERSHIP, "Admin")
    assert_complete(answer)


async def test_details_member(sdk: Sdk) -> None:
    answer = await sdk(MembersApi, "details_member", OWNER_MEMBERSHIP)
    assert answer.email == "owner@emulator.invalid"
    assert_complete(answer)


# ---- document folders ------------------------------------------------------------------


async def test_list_document_folders(sdk: Sdk) -> None:
    answer = await sdk(FoldersAPIApi, "list_document_folders")
    assert [(f.uuid, f.has_items, f.has_folders) for f in answer.results] == [
        (FOLDER_ID, True, False)
    ]
    assert_complete(answer)


async def test_create_document_folder(sdk: Sdk) -> None:
    request = DocumentsFolderCreateRequest(name="2024", parent_uuid=FOLDER_ID)
    created = await sdk(FoldersAPIApi, "create_document_folder", request)
    assert created.name == "2024"
    assert_complete(created)
    below = await sdk(FoldersAPIApi, "list_document_folders", parent_uuid=FOLDER_ID)
    assert [f.uuid for f in below.results] == [created.uuid]


async def test_rename_document_folder(sdk: Sdk) -> None:
    request = DocumentsFolderRenameRequest(name="Signed contracts")
    renamed = await sdk(FoldersAPIApi, "rename_document_folder", FOLDER_ID, request)
    assert (renamed.uuid, renamed.name) == (FOLDER_ID, "Signed contracts")
    assert_complete(renamed)
