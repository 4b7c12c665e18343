"""The workspace's contacts (``/public/v1/contacts``).

PandaDoc also files every document recipient as a contact, found by email or created;
``find_or_create`` is that, and gives recipients their ``contact_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from .common import new_id

__all__ = ["CONTACT_FIELDS", "Contact", "ContactStore"]

#: The fields a client may set, all optional strings (ContactCreateRequest).
CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "phone",
    "country",
    "state",
    "street_address",
    "city",
    "postal_code",
)


@dataclass
class Contact:
    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    phone: str | None = None
    country: str | None = None
    state: str | None = None
    street_address: str | None = None
    city: str | None = None
    postal_code: str | None = None

    def view(self) -> dict[str, object]:
        """ContactDetailsResponse."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ContactStore:
    def __init__(self) -> None:
        jane = Contact(
            id="EmuContact000000000001",
            email="jane@example.com",
            first_name="Jane",
            last_name="Roe",
            company="Acme Corp",
            job_title="Purchasing manager",
        )
        self._contacts: dict[str, Contact] = {jane.id: jane}

    def list(self, email: str | None = None) -> list[Contact]:
        found = list(self._contacts.values())
        if email:
            found = [c for c in found if (c.email or "").casefold() == email.casefold()]
        return found

    def get(self, contact_id: str) -> Contact | None:
        return self._contacts.get(contact_id)

    def create(self, values: Mapping[str, str | None]) -> Contact:
        contact = Contact(id=new_id(self._contacts), **values)
        self._contacts[contact.id] = contact
        return contact

    def update(self, contact: Contact, values: Mapping[str, str | None]) -> Contact:
        for name, value in values.items():
            setattr(contact, name, value)
        return contact

    def delete(self, contact_id: str) -> bool:
        return self._contacts.pop(contact_id, None) is not None

    def find_or_create(self, email: str, first_name: str | None, last_name: str | None) -> Contact:
        for contact in self._contacts.values():
            if (contact.email or "").casefold() == email.casefold():
                return contact
        return self.create({"email": email, "first_name": first_name, "last_name": last_name})
