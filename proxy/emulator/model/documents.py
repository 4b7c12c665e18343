"""The emulated PandaDoc documents: what one is made of, and the list's query.

``document_store`` keeps them and moves them through their life cycle;
``document_views`` gives their JSON shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .common import new_id

__all__ = [
    "EXPIRES_AFTER",
    "ORDER_FIELDS",
    "STATUS_CODES",
    "DocField",
    "Document",
    "DocumentQuery",
    "NewRecipient",
    "Recipient",
    "Session",
    "parse_status_filter",
]

#: PandaDoc's integer codes for document statuses (the list filter, PATCH .../status).
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
ORDER_FIELDS = (
    "name",
    "date_created",
    "date_status_changed",
    "date_of_last_action",
    "date_modified",
    "date_sent",
    "date_completed",
    "date_expiration",
    "date_declined",
    "status",
)

#: How long a sent document stays valid (PandaDoc's default expiration).
EXPIRES_AFTER = timedelta(days=60)


def parse_status_filter(value: str) -> str | None:
    """A status query value (PandaDoc's integer code, or a status name) to a status."""
    if value.isdigit():
        return STATUS_CODES.get(int(value))
    name = value if value.startswith("document.") else f"document.{value}"
    return name if name in STATUS_CODES.values() else None


@dataclass
class Recipient:
    """One recipient; ``contact_id`` is the workspace contact PandaDoc files them as."""

    id: str
    email: str | None
    first_name: str
    last_name: str
    contact_id: str
    role: str = ""
    recipient_type: str = "signer"  # or "CC"
    signing_order: int | None = None
    phone: str | None = None
    delivery_methods: dict[str, bool] = field(default_factory=lambda: {"email": True, "sms": False})
    redirect: dict[str, object] = field(default_factory=lambda: {"is_enabled": False, "url": ""})
    has_completed: bool = False
    signature_date: datetime | None = None
    session: str = field(default_factory=new_id)  # the token of its signing link


@dataclass(frozen=True)
class NewRecipient:
    """A recipient as a create request names it."""

    email: str | None
    first_name: str
    last_name: str
    role: str = ""
    signing_order: int | None = None
    phone: str | None = None


@dataclass
class DocField:
    """A fillable field of a document, from its template."""

    uuid: str
    name: str
    field_id: str
    type: str
    role: str
    value: object = ""
    title: str = ""
    placeholder: str = ""


@dataclass
class Session:
    """A signing session (``POST .../session``): a link for one recipient, until it expires."""

    id: str
    document_id: str
    recipient_id: str
    expires_at: datetime


@dataclass
class Document:
    """One stored document; its status advances lazily, see the module docstring."""

    id: str
    name: str
    status: str
    date_created: datetime
    date_modified: datetime
    date_status_changed: datetime
    ready_at: float = 0.0  # monotonic: when processing ends
    complete_at: float | None = None  # monotonic: when it completes by itself
    date_sent: datetime | None = None
    date_completed: datetime | None = None
    expiration_date: datetime | None = None
    template: dict[str, str] | None = None
    recipients: list[Recipient] = field(default_factory=list)
    fields: list[DocField] = field(default_factory=list)
    tokens: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    folder_uuid: str | None = None
    file_sha256: str | None = None  # of an uploaded PDF, kept for tests and debugging
    link_origin: str = ""  # the emulator's origin as its creator saw it, for signing links
    deleted: bool = False

    def recipient(self, recipient_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.id == recipient_id), None)

    def sort_key(self, key: str) -> object:
        if key == "date_expiration":
            key = "expiration_date"
        if key in ("date_of_last_action", "date_declined"):
            key = "date_modified"
        value = getattr(self, key)
        return value if value is not None else datetime.min.replace(tzinfo=self.date_created.tzinfo)


@dataclass(frozen=True)
class DocumentQuery:
    """The filters of ``GET /public/v1/documents``; None means "any"."""

    q: str | None = None
    id: str | None = None
    status: str | None = None
    status_ne: str | None = None
    template_id: str | None = None
    folder_uuid: str | None = None
    contact_id: str | None = None
    tag: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    deleted: bool = False
    created_from: datetime | None = None
    created_to: datetime | None = None
    modified_from: datetime | None = None
    modified_to: datetime | None = None
    completed_from: datetime | None = None
    completed_to: datetime | None = None
    order_by: str = "-date_created"

    def matches(self, doc: Document) -> bool:
        checks = (
            doc.deleted == self.deleted,
            not self.q or self.q.casefold() in doc.name.casefold(),
            not self.id or doc.id == self.id,
            not self.status or doc.status == self.status,
            not self.status_ne or doc.status != self.status_ne,
            not self.template_id or (doc.template or {}).get("id") == self.template_id,
            not self.folder_uuid or doc.folder_uuid == self.folder_uuid,
            not self.contact_id or any(r.contact_id == self.contact_id for r in doc.recipients),
            not self.tag or self.tag in doc.tags,
            all(str(doc.metadata.get(key)) == value for key, value in self.metadata),
            _within(doc.date_created, self.created_from, self.created_to),
            _within(doc.date_modified, self.modified_from, self.modified_to),
            _within(doc.date_completed, self.completed_from, self.completed_to),
        )
        return all(checks)


def _within(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if moment is None:
        return False
    return (start is None or moment >= start) and (end is None or moment <= end)
