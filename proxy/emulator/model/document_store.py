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
from datetime import timedelta

from .common import new_id, now
from .contacts import ContactStore
from .document_seed import seed_documents
from .documents import (
    EXPIRES_AFTER,
    DocField,
    Document,
    DocumentQuery,
    NewRecipient,
    Recipient,
    Session,
)
from .templates import Template

__all__ = ["DocumentEvent", "DocumentStore"]

#: What the store reports: a webhook trigger, the document, extras (the recipient).
DocumentEvent = Callable[[str, Document, Mapping[str, object]], None]


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
        self._documents: dict[str, Document] = {doc.id: doc for doc in seed_documents(contacts)}
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


def _tokens(given: Iterable[Mapping[str, str]], template: Template | None) -> list[dict[str, str]]:
    """The request's tokens, or else the template's (with their default values)."""
    tokens = [{"name": t["name"], "value": t["value"]} for t in given]
    return tokens or [dict(t) for t in (template.tokens if template else ())]
