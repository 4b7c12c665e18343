"""The emulated PandaDoc documents: storage and life cycle.

A document's life, as PandaDoc's docs describe it and the emulator plays it::

    create ──> document.uploaded ──(processing, document_processing_s)──> document.draft
    send (draft only) ──> document.sent ──(every signer completes)──> document.completed
    PATCH .../status: draft|sent|viewed -> completed; sent|viewed -> voided; -> declined
    a recipient opening its signing link: sent -> viewed
    delete ──> gone (404), listed with ?deleted=true

Processing and automatic completion are due at a time on the store's monotonic clock.
They happen lazily (any read of a document first brings it up to date) and, while the app
runs, on time (``lifecycle`` sleeps until the next due moment and calls ``advance_all``),
so webhooks for them go out even when nobody polls. Every status change, completed
recipient and deletion is reported to ``on_event``, which the state turns into webhooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .common import new_id, now, seed_day
from .contacts import ContactStore
from .templates import Template

__all__ = [
    "ORDER_FIELDS",
    "STATUS_CODES",
    "DocField",
    "Document",
    "DocumentQuery",
    "DocumentStore",
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

DocumentEvent = Callable[[str, "Document", Mapping[str, object]], None]


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


def _tokens(given: Iterable[Mapping[str, str]], template: Template | None) -> list[dict[str, str]]:
    """The request's tokens, or else the template's (with their default values)."""
    tokens = [{"name": t["name"], "value": t["value"]} for t in given]
    return tokens or [dict(t) for t in (template.tokens if template else ())]


def _within(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if moment is None:
        return False
    return (start is None or moment >= start) and (end is None or moment <= end)


class DocumentStore:
    """The documents of the emulated workspace, seeded with a few examples.

    Seeded documents have fixed ids and dates, so users' CI can refer to them.
    ``processing_s`` and ``completion_s`` read the current settings at each creation
    and send; ``on_event`` and ``on_schedule`` are set by the state and the app.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        contacts: ContactStore,
        *,
        processing_s: Callable[[], float] = lambda: 1.0,
        completion_s: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._clock = clock
        self._contacts = contacts
        self._processing_s = processing_s
        self._completion_s = completion_s
        self.on_event: DocumentEvent | None = None
        self.on_schedule: Callable[[], None] | None = None
        self._documents: dict[str, Document] = {doc.id: doc for doc in _seed(contacts)}
        self.sessions: dict[str, Session] = {}

    # ---- events and the clock ------------------------------------------------------

    def _emit(self, trigger: str, doc: Document, **extra: object) -> None:
        if self.on_event is not None:
            self.on_event(trigger, doc, extra)

    def _scheduled(self) -> None:
        if self.on_schedule is not None:
            self.on_schedule()

    def _set_status(self, doc: Document, status: str) -> None:
        moment = now()
        doc.status, doc.date_status_changed, doc.date_modified = status, moment, moment
        self._emit("document_state_changed", doc)

    def _advance(self, doc: Document) -> Document:
        """Bring a document up to date: finish processing, complete it when due."""
        clock = self._clock()
        if doc.status == "document.uploaded" and clock >= doc.ready_at:
            self._set_status(doc, "document.draft")
        if doc.complete_at is not None and clock >= doc.complete_at:
            doc.complete_at = None
            if doc.status in ("document.sent", "document.viewed"):
                self.complete(doc)
        return doc

    def advance_all(self) -> None:
        for doc in list(self._documents.values()):
            self._advance(doc)

    def next_due(self) -> float | None:
        """The earliest moment (monotonic) at which some document changes by itself."""
        due = [d.ready_at for d in self._documents.values() if d.status == "document.uploaded"]
        due += [d.complete_at for d in self._documents.values() if d.complete_at is not None]
        return min(due, default=None)

    # ---- reading ------------------------------------------------------------------

    def get(self, document_id: str) -> Document | None:
        """A document that exists (deleted ones are gone), brought up to date."""
        doc = self._documents.get(document_id)
        return None if doc is None or doc.deleted else self._advance(doc)

    def get_even_deleted(self, document_id: str) -> Document | None:
        return self._documents.get(document_id)

    def all(self) -> list[Document]:
        return [self._advance(doc) for doc in self._documents.values() if not doc.deleted]

    def in_folder(self, folder_uuid: str) -> bool:
        return any(d.folder_uuid == folder_uuid and not d.deleted for d in self._documents.values())

    def search(self, query: DocumentQuery) -> list[Document]:
        found = [self._advance(doc) for doc in self._documents.values() if query.matches(doc)]
        key = query.order_by.removeprefix("-")
        return sorted(
            found,
            key=lambda doc: (doc.sort_key(key), doc.id),
            reverse=query.order_by.startswith("-"),
        )

    # ---- changing -----------------------------------------------------------------

    def _recipient(self, new: NewRecipient, recipient_type: str = "signer") -> Recipient:
        if new.email:
            contact_id = self._contacts.find_or_create(new.email, new.first_name, new.last_name).id
        else:
            contact_id = self._contacts.create(
                {"first_name": new.first_name, "last_name": new.last_name, "phone": new.phone}
            ).id
        return Recipient(
            id=new_id(),
            email=new.email,
            first_name=new.first_name,
            last_name=new.last_name,
            contact_id=contact_id,
            role=new.role,
            recipient_type=recipient_type,
            signing_order=new.signing_order,
            phone=new.phone,
            delivery_methods={"email": bool(new.email), "sms": not new.email},
        )

    def create(
        self,
        name: str,
        *,
        template: Template | None = None,
        recipients: Iterable[NewRecipient] = (),
        fields: Mapping[str, object] | None = None,
        tokens: Iterable[Mapping[str, str]] = (),
        metadata: Mapping[str, object] | None = None,
        tags: Iterable[str] = (),
        folder_uuid: str | None = None,
        file_sha256: str | None = None,
        link_origin: str = "",
    ) -> Document:
        """Store a new document in "document.uploaded", as PandaDoc answers a create."""
        moment = now()
        values = dict(fields or {})
        doc = Document(
            id=new_id(self._documents),
            name=name,
            status="document.uploaded",
            date_created=moment,
            date_modified=moment,
            date_status_changed=moment,
            ready_at=self._clock() + self._processing_s(),
            template={"id": template.id, "name": template.name} if template else None,
            recipients=[self._recipient(r) for r in recipients],
            fields=[
                DocField(f.uuid, f.name, f.field_id, f.type, f.role, values.get(f.name, ""))
                for f in (template.fields if template else ())
            ],
            tokens=_tokens(tokens, template),
            metadata=dict(metadata or {}),
            tags=list(tags),
            folder_uuid=folder_uuid,
            file_sha256=file_sha256,
            link_origin=link_origin,
        )
        self._documents[doc.id] = doc
        self._scheduled()
        return doc

    def send(self, doc: Document, link_origin: str) -> None:
        """draft -> sent: sealed, signing links issued, expiring in 60 days."""
        moment = now()
        doc.date_sent, doc.expiration_date = moment, moment + EXPIRES_AFTER
        if link_origin:
            doc.link_origin = link_origin
        completion = self._completion_s()
        if completion is not None:
            doc.complete_at = self._clock() + completion
            self._scheduled()
        self._set_status(doc, "document.sent")

    def complete_recipient(self, doc: Document, recipient: Recipient) -> None:
        """One signer completes; the document completes with its last signer."""
        if recipient.has_completed:
            return
        recipient.has_completed, recipient.signature_date = True, now()
        self._emit("recipient_completed", doc, recipient=recipient)
        signers = [r for r in doc.recipients if r.recipient_type != "CC"]
        if all(r.has_completed for r in signers) and doc.status != "document.completed":
            self._finish(doc)

    def complete(self, doc: Document) -> None:
        """Every signer completes (each a recipient_completed), then the document."""
        signers = [r for r in doc.recipients if r.recipient_type != "CC"]
        for recipient in signers:
            self.complete_recipient(doc, recipient)
        if doc.status != "document.completed":
            self._finish(doc)

    def _finish(self, doc: Document) -> None:
        doc.date_completed, doc.complete_at = now(), None
        self._set_status(doc, "document.completed")

    def set_status(self, doc: Document, status: str) -> None:
        """A manual status change (PATCH .../status), already checked as allowed."""
        if status == "document.completed":
            self.complete(doc)
        else:
            doc.complete_at = None
            self._set_status(doc, status)

    def view(self, doc: Document) -> None:
        """A recipient opened the document: sent -> viewed."""
        if doc.status == "document.sent":
            self._set_status(doc, "document.viewed")

    def add_cc(self, doc: Document, email: str | None, first: str, last: str) -> Recipient:
        recipient = self._recipient(NewRecipient(email, first, last), recipient_type="CC")
        doc.recipients.append(recipient)
        doc.date_modified = now()
        return recipient

    def remove_recipient(self, doc: Document, recipient: Recipient) -> None:
        doc.recipients.remove(recipient)
        doc.date_modified = now()

    def delete(self, doc: Document) -> None:
        """Gone for every route but the list with ``deleted=true``."""
        doc.deleted, doc.complete_at, doc.date_modified = True, None, now()
        self._emit("document_deleted", doc)

    def open_session(self, doc: Document, recipient: Recipient, lifetime_s: float) -> Session:
        expires_at = now() + timedelta(seconds=lifetime_s)
        session = Session(new_id(self.sessions), doc.id, recipient.id, expires_at)
        self.sessions[session.id] = session
        return session

    def by_link(self, token: str) -> tuple[Document, Recipient] | None:
        """The document and recipient a signing link (or session id) is for."""
        session = self.sessions.get(token)
        for doc in self._documents.values():
            if doc.deleted:
                continue
            for recipient in doc.recipients:
                if recipient.session == token or (
                    session is not None
                    and session.document_id == doc.id
                    and session.recipient_id == recipient.id
                    and session.expires_at > now()
                ):
                    return self._advance(doc), recipient
        return None


def _seed(contacts: ContactStore) -> list[Document]:
    """Three documents in different states, present from start-up."""
    jane = contacts.list(email="jane@example.com")[0]

    def signer(recipient_id: str, **changes: object) -> Recipient:
        recipient = Recipient(
            id=recipient_id,
            email=jane.email,
            first_name=jane.first_name or "",
            last_name=jane.last_name or "",
            contact_id=jane.id,
            role="Client",
            session=f"EmuSession{recipient_id[-12:]}",
        )
        for name, value in changes.items():
            setattr(recipient, name, value)
        return recipient

    template = {"id": "EmuTemplate00000000001", "name": "Service agreement template"}
    return [
        Document(
            id="A7bqWzJk3fTNm8xYpRv2Lc",
            name="Welcome to the PandaDoc emulator",
            status="document.draft",
            date_created=seed_day(15, 9),
            date_modified=seed_day(15, 9),
            date_status_changed=seed_day(15, 9),
        ),
        Document(
            id="Qh4sDn9KeU6tBw2ZgXy5Mo",
            name="Service agreement - Acme Corp",
            status="document.sent",
            date_created=seed_day(16, 10),
            date_modified=seed_day(16, 11),
            date_status_changed=seed_day(16, 11),
            date_sent=seed_day(16, 11),
            expiration_date=seed_day(16, 11) + EXPIRES_AFTER,
            template=template,
            recipients=[signer("EmuRecipient00000000001")],
            tags=["agreement"],
        ),
        Document(
            id="Vr8cLp3JaN7wEf5TkYq1Hs",
            name="Invoice #1001",
            status="document.completed",
            date_created=seed_day(17, 12),
            date_modified=seed_day(18, 8),
            date_status_changed=seed_day(18, 8),
            date_sent=seed_day(17, 13),
            date_completed=seed_day(18, 8),
            expiration_date=seed_day(17, 13) + EXPIRES_AFTER,
            recipients=[
                signer(
                    "EmuRecipient00000000002", has_completed=True, signature_date=seed_day(18, 8)
                )
            ],
            metadata={"invoice_number": "1001"},
            folder_uuid="EmuFolder0000000000001",
        ),
    ]
