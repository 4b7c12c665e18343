"""The JSON shapes of documents in PandaDoc's answers and webhooks.

Field names and types follow PandaDoc's published OpenAPI specification and the models
of its official SDK (DocumentListResponse, DocumentStatusResponse, DocumentCreateResponse,
DocumentDetailsResponse, DocumentSendResponse, ListDocumentFieldsResponse), so a client
written against the real API parses the emulator's answers unchanged: every field is
present, and a field the SDK declares as a string is never null.
"""

from __future__ import annotations

from collections.abc import Collection

from .common import OWNER, timestamp
from .documents import DocField, Document, Recipient
from .templates import EMPTY_PRICING

__all__ = [
    "create_view",
    "details_view",
    "field_view",
    "list_item",
    "recipient_view",
    "send_view",
    "shared_link",
    "status_view",
    "webhook_data",
]


def shared_link(doc: Document, recipient: Recipient) -> str:
    """The recipient's signing link once the document is sent; "" before, as PandaDoc sends."""
    if doc.date_sent is None or doc.status in ("document.draft", "document.uploaded"):
        return ""
    return f"{doc.link_origin}/s/{recipient.session}"


def recipient_view(doc: Document, recipient: Recipient) -> dict[str, object]:
    """DocumentDetailsResponse.recipients[]."""
    return {
        "id": recipient.id,
        "recipient_type": recipient.recipient_type,
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "email": recipient.email,
        "phone": recipient.phone,
        "delivery_methods": dict(recipient.delivery_methods),
        "role": recipient.role,
        "roles": [recipient.role] if recipient.role else [],
        "signing_order": recipient.signing_order,
        "contact_id": recipient.contact_id,
        "has_completed": recipient.has_completed,
        "shared_link": shared_link(doc, recipient),
        "signature_date": timestamp(recipient.signature_date),
        "verification_settings": None,
        "redirect": dict(recipient.redirect),
    }


def list_item(doc: Document) -> dict[str, object]:
    """DocumentListResponse.results[]."""
    return {
        "id": doc.id,
        "name": doc.name,
        "status": doc.status,
        "date_created": timestamp(doc.date_created),
        "date_modified": timestamp(doc.date_modified),
        "date_completed": timestamp(doc.date_completed),
        "expiration_date": timestamp(doc.expiration_date),
        "version": "2",
    }


def status_view(doc: Document) -> dict[str, object]:
    """DocumentStatusResponse (``GET /public/v1/documents/{id}``)."""
    return {**list_item(doc), "uuid": doc.id}


def create_view(doc: Document, base_url: str) -> dict[str, object]:
    """DocumentCreateResponse, with the link clients poll for the status."""
    view = list_item(doc)
    del view["version"], view["date_completed"]
    return {
        **view,
        "uuid": doc.id,
        "links": [
            {"rel": "status", "href": f"{base_url}/public/v1/documents/{doc.id}", "type": "GET"}
        ],
        "info_message": (
            "The document is being processed: poll its status until it is document.draft"
            " before sending it or reading its details."
        ),
    }


def _assigned_to(doc: Document, f: DocField) -> dict[str, object]:
    recipient = next((r for r in doc.recipients if r.role == f.role), None)
    if recipient is None:
        return {"id": "", "first_name": "", "last_name": "", "email": "", "type": "role"}
    return {
        "id": recipient.id,
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "email": recipient.email or "",
        "phone": recipient.phone or "",
        "recipient_type": recipient.recipient_type,
        "has_completed": recipient.has_completed,
        "signing_order": recipient.signing_order,
        "type": "recipient",
    }


def field_view(doc: Document, f: DocField) -> dict[str, object]:
    """ListDocumentFieldsResponse.fields[] (and DocumentDetailsResponse.fields[])."""
    return {
        "uuid": f.uuid,
        "name": f.name,
        "title": f.title,
        "placeholder": f.placeholder,
        "value": f.value,
        "is_filled": f.value not in ("", None, False),
        "field_id": f.field_id,
        "type": f.type,
        "assigned_to": _assigned_to(doc, f),
        "layout": {
            "page": 1,
            "position": {"offset_x": 72.0, "offset_y": 600.0, "anchor_point": "topleft"},
            "style": {"width": 200, "height": 24},
        },
        "section_uuid": f"{doc.id}-section-1",
    }


def details_view(doc: Document) -> dict[str, object]:
    """DocumentDetailsResponse (``GET /public/v1/documents/{id}/details``)."""
    sent = doc.date_sent is not None
    return {
        **status_view(doc),
        "autonumbering_sequence_name_prefix": None,
        "folder_uuid": doc.folder_uuid,
        "content_date_modified": timestamp(doc.date_modified),
        "date_sent": timestamp(doc.date_sent),
        "ref_number": f"EMU-{doc.id[:5].upper()}-{doc.id[5:10].upper()}",
        "created_by": dict(OWNER),
        "template": dict(doc.template) if doc.template else None,
        "metadata": dict(doc.metadata),
        "tokens": [dict(token) for token in doc.tokens],
        "fields": [field_view(doc, f) for f in doc.fields],
        "pricing": dict(EMPTY_PRICING),
        "tags": list(doc.tags),
        "sent_by": dict(OWNER) if sent else None,
        "recipients": [recipient_view(doc, r) for r in doc.recipients],
        "grand_total": {"amount": "0.00", "currency": "USD"},
        "linked_objects": [],
    }


def send_view(doc: Document) -> dict[str, object]:
    """DocumentSendResponse."""
    return {
        **status_view(doc),
        "recipients": [
            {
                key: value
                for key, value in recipient_view(doc, r).items()
                if key
                in (
                    "id",
                    "first_name",
                    "last_name",
                    "recipient_type",
                    "email",
                    "phone",
                    "delivery_methods",
                    "signing_order",
                    "shared_link",
                )
            }
            for r in doc.recipients
        ],
    }


def webhook_data(
    doc: Document, payload: Collection[str], recipient: Recipient | None = None
) -> dict[str, object]:
    """A document event's ``data``: the basics and recipients always, the payload options
    the subscription asked for (metadata, fields, tokens, pricing/products) besides."""
    details = details_view(doc)
    data: dict[str, object] = {
        key: details[key]
        for key in (
            "id",
            "name",
            "date_created",
            "date_modified",
            "date_completed",
            "expiration_date",
            "autonumbering_sequence_name_prefix",
            "created_by",
            "tags",
            "status",
            "recipients",
            "sent_by",
            "grand_total",
            "template",
            "version",
            "linked_objects",
        )
    }
    for option in ("metadata", "fields", "tokens"):
        if option in payload:
            data[option] = details[option]
    if "pricing" in payload or "products" in payload:
        data["pricing"] = details["pricing"]
    if recipient is not None:
        data["action_by"] = {
            "id": recipient.id,
            "email": recipient.email,
            "first_name": recipient.first_name,
            "last_name": recipient.last_name,
        }
        data["action_date"] = timestamp(recipient.signature_date)
    return data
