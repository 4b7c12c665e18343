"""The emulated PandaDoc documents: storage, life cycle and JSON shapes.

Field names and types follow PandaDoc's published OpenAPI spec
(DocumentListResponse, DocumentCreateResponse, DocumentStatusResponse,
DocumentDetailsResponse), so a client written against the real API parses
the emulator's answers unchanged.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: A freshly created document is "document.uploaded" for this long, then turns
#: "document.draft", as PandaDoc processes documents asynchronously. Clients
#: are expected to poll the status; a short delay keeps that loop exercised.
PROCESSING_S = 1.0

#: PandaDoc's integer codes for the ``status`` filter of the list endpoint.
STATUS_CODES: dict[int, str] = {
    0: "document.draft",
    1: "document.sent",
    2: "document.completed",
    3: "document.uploaded",
    4: "document.error",
    5: "document.viewed",
    6: "document.waiting_approval",
    7: "document.approved",
    8: "document.rejected",
    9: "document.waiting_pay",
    10: "document.paid",
    11: "document.voided",
    12: "document.declined",
    13: "document.external_review",
}

#: The sort keys the list endpoint accepts (each may be prefixed with "-").
ORDER_FIELDS = ("name", "date_created", "date_modified", "status")

_ID_ALPHABET = string.ascii_letters + string.digits

_CREATED_BY: dict[str, object] = {
    "id": "EmuUser0000000000000001",
    "membership_id": "EmuMembership0000000001",
    "email": "owner@emulator.invalid",
    "first_name": "Emma",
    "last_name": "Ulator",
    "avatar": None,
}


def _timestamp(moment: datetime | None) -> str | None:
    """PandaDoc's timestamp format: ISO 8601, microseconds, UTC, "Z"."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_document_id() -> str:
    """A 22-character alphanumeric id, the shape PandaDoc uses."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def parse_status_filter(value: str) -> str | None:
    """``status`` query value (PandaDoc's integer code, or a status name) to a status.

    Returns None when the value names no status.
    """
    if value.isdigit():
        return STATUS_CODES.get(int(value))
    name = value if value.startswith("document.") else f"document.{value}"
    return name if name in STATUS_CODES.values() else None


def recipient_view(recipient: Mapping[str, object], index: int) -> dict[str, object]:
    """A recipient as DocumentDetailsResponse lists it, from what a client sent."""
    role = recipient.get("role")
    return {
        "id": f"EmuRecipient{index:011d}",
        "recipient_type": "signer",
        "first_name": recipient.get("first_name"),
        "last_name": recipient.get("last_name"),
        "email": recipient.get("email"),
        "role": role if isinstance(role, str) else "",
        "roles": [role] if isinstance(role, str) and role else [],
        "signing_order": recipient.get("signing_order"),
        "contact_id": None,
        "has_completed": False,
        "shared_link": None,
        "signature_date": None,
    }


@dataclass
class Document:
    """One stored document; ``status`` advances lazily, see ``DocumentStore``."""

    id: str
    name: str
    status: str
    date_created: datetime
    created_at: float  # on the store's monotonic clock, for the upload life cycle
    date_modified: datetime | None = None
    date_completed: datetime | None = None
    expiration_date: datetime | None = None
    version: str = "2"
    template: dict[str, str] | None = None
    recipients: list[dict[str, object]] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    file_sha256: str | None = None  # of an uploaded PDF, kept for debugging

    def list_item(self) -> dict[str, object]:
        """DocumentListResponse.results[]."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "date_created": _timestamp(self.date_created),
            "date_modified": _timestamp(self.date_modified or self.date_created),
            "expiration_date": _timestamp(self.expiration_date),
            "version": self.version,
        }

    def status_view(self) -> dict[str, object]:
        """DocumentStatusResponse (``GET /public/v1/documents/{id}``)."""
        return {
            **self.list_item(),
            "date_completed": _timestamp(self.date_completed),
            "uuid": self.id,
        }

    def create_view(self, base_url: str) -> dict[str, object]:
        """DocumentCreateResponse, with the link clients poll for the status."""
        view = self.list_item()
        del view["version"]
        return {
            **view,
            "uuid": self.id,
            "links": [
                {
                    "rel": "status",
                    "href": f"{base_url}/public/v1/documents/{self.id}",
                    "type": "GET",
                }
            ],
            "info_message": (
                "You need to poll the Document Status method until the status"
                " will be changed to document.draft"
            ),
        }

    def details_view(self) -> dict[str, object]:
        """DocumentDetailsResponse (``GET /public/v1/documents/{id}/details``)."""
        return {
            **self.status_view(),
            "autonumbering_sequence_name_prefix": None,
            "created_by": dict(_CREATED_BY),
            "template": dict(self.template) if self.template else None,
            "metadata": dict(self.metadata),
            "tokens": [],
            "fields": [],
            "pricing": {"tables": [], "total": "0.00"},
            "tags": list(self.tags),
            "sent_by": dict(_CREATED_BY) if self.status != "document.draft" else None,
            "recipients": [dict(r) for r in self.recipients],
            "grand_total": {"amount": "0.00", "currency": "USD"},
            "linked_objects": [],
        }


class DocumentStore:
    """The documents of the emulated workspace, seeded with a few examples.

    Seeded documents have fixed ids and dates, so users' CI can refer to them.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._documents: dict[str, Document] = {doc.id: doc for doc in _seed(clock())}

    def _advance(self, doc: Document) -> Document:
        """Finish "processing" an uploaded document once PROCESSING_S has passed."""
        if doc.status == "document.uploaded" and self._clock() - doc.created_at >= PROCESSING_S:
            doc.status = "document.draft"
            doc.date_modified = doc.date_created + timedelta(seconds=PROCESSING_S)
        return doc

    def get(self, document_id: str) -> Document | None:
        doc = self._documents.get(document_id)
        return None if doc is None else self._advance(doc)

    def all(self) -> list[Document]:
        return [self._advance(doc) for doc in self._documents.values()]

    def search(
        self, *, q: str | None = None, status: str | None = None, order_by: str = "-date_created"
    ) -> list[Document]:
        """Documents whose name contains ``q`` (any case) and with ``status``, sorted."""
        found: Iterable[Document] = self.all()
        if q:
            found = [doc for doc in found if q.casefold() in doc.name.casefold()]
        if status:
            found = [doc for doc in found if doc.status == status]
        key = order_by.removeprefix("-")
        return sorted(
            found,
            key=lambda doc: (getattr(doc, key) or doc.date_created, doc.id),
            reverse=order_by.startswith("-"),
        )

    def create(
        self,
        name: str,
        *,
        template: dict[str, str] | None = None,
        recipients: Iterable[Mapping[str, object]] = (),
        metadata: Mapping[str, object] | None = None,
        tags: Iterable[str] = (),
        file_sha256: str | None = None,
    ) -> Document:
        """Store a new document in "document.uploaded", as PandaDoc answers a create."""
        now = datetime.now(UTC)
        doc_id = new_document_id()
        while doc_id in self._documents:
            doc_id = new_document_id()
        doc = Document(
            id=doc_id,
            name=name,
            status="document.uploaded",
            date_created=now,
            date_modified=now,
            created_at=self._clock(),
            template=template,
            recipients=[recipient_view(r, i) for i, r in enumerate(recipients, start=1)],
            metadata=dict(metadata or {}),
            tags=list(tags),
            file_sha256=file_sha256,
        )
        self._documents[doc.id] = doc
        return doc

    def delete(self, document_id: str) -> bool:
        """Forget a document; False if there was none with that id."""
        return self._documents.pop(document_id, None) is not None


def _seed(now: float) -> list[Document]:
    """Three documents in different states, present from start-up."""

    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 1, day, hour, 0, 0, tzinfo=UTC)

    signer = recipient_view(
        {"email": "jane@example.com", "first_name": "Jane", "last_name": "Roe", "role": "Client"},
        1,
    )
    template = {"id": "EmuTemplate00000000001", "name": "Service agreement template"}
    return [
        Document(
            id="A7bqWzJk3fTNm8xYpRv2Lc",
            name="Welcome to the PandaDoc emulator",
            status="document.draft",
            date_created=at(15, 9),
            date_modified=at(15, 9),
            created_at=now,
        ),
        Document(
            id="Qh4sDn9KeU6tBw2ZgXy5Mo",
            name="Service agreement - Acme Corp",
            status="document.sent",
            date_created=at(16, 10),
            date_modified=at(16, 11),
            expiration_date=at(16, 11) + timedelta(days=60),
            created_at=now,
            template=template,
            recipients=[signer],
            tags=["agreement"],
        ),
        Document(
            id="Vr8cLp3JaN7wEf5TkYq1Hs",
            name="Invoice #1001",
            status="document.completed",
            date_created=at(17, 12),
            date_modified=at(18, 8),
            date_completed=at(18, 8),
            created_at=now,
            recipients=[{**signer, "has_completed": True, "signature_date": _timestamp(at(18, 8))}],
            metadata={"invoice_number": "1001"},
        ),
    ]
