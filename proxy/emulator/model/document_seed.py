"""The documents present at every start, with fixed ids and dates (users' CI refers to them)."""

from __future__ import annotations

from .common import seed_day
from .contacts import ContactStore
from .documents import EXPIRES_AFTER, Document, Recipient

__all__ = ["seed_documents"]


def seed_documents(contacts: ContactStore) -> list[Document]:
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
