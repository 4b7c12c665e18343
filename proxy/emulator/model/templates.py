"""The workspace's templates (``/public/v1/templates``): seeded, fixed ids.

A document created from a template takes its name, roles, tokens and fields; the ids
below are stable so users' CI can create documents from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .common import OWNER, seed_day, timestamp

__all__ = ["EMPTY_PRICING", "Template", "TemplateField", "TemplateStore"]

#: PricingResponse of a document or template without pricing tables or quotes.
EMPTY_PRICING: dict[str, object] = {"tables": [], "quotes": [], "total": "0.00"}


@dataclass(frozen=True)
class TemplateField:
    """A fillable field, assigned to one of the template's roles."""

    uuid: str
    name: str
    field_id: str
    type: str  # "text", "signature", "date", ...
    role: str
    title: str = ""
    placeholder: str = ""


@dataclass
class Template:
    id: str
    name: str
    date_created: datetime
    roles: list[str]
    fields: list[TemplateField] = field(default_factory=list)
    tokens: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    folder_uuid: str | None = None

    def role_id(self, role: str) -> str:
        return f"EmuRole{self.id[-7:]}{self.roles.index(role):08d}"

    def list_item(self) -> dict[str, object]:
        """TemplateListResponse.results[]."""
        stamp = timestamp(self.date_created)
        return {
            "id": self.id,
            "name": self.name,
            "date_created": stamp,
            "date_modified": stamp,
            "content_date_modified": stamp,
            "version": "2",
        }

    def details_view(self) -> dict[str, object]:
        """TemplateDetailsResponse."""
        creator = {key: OWNER[key] for key in ("id", "email", "first_name", "last_name", "avatar")}
        return {
            **self.list_item(),
            "folder_uuid": self.folder_uuid,
            "created_by": creator,
            "metadata": {},
            "tokens": [dict(token) for token in self.tokens],
            "fields": [self.field_view(f) for f in self.fields],
            "pricing": dict(EMPTY_PRICING),
            "tags": list(self.tags),
            "roles": [
                {
                    "id": self.role_id(role),
                    "name": role,
                    "signing_order": None,
                    "preassigned_person": None,
                }
                for role in self.roles
            ],
            "content_placeholders": [],
            "images": [],
        }

    def field_view(self, f: TemplateField) -> dict[str, object]:
        return {
            "uuid": f.uuid,
            "name": f.name,
            "title": f.title,
            "placeholder": f.placeholder,
            "value": "",
            "assigned_to": {
                "id": self.role_id(f.role),
                "name": f.role,
                "preassigned_person": None,
                "type": "role",
            },
            "merge_field": f.name,
            "field_id": f.field_id,
            "type": f.type,
            "is_filled": False,
        }


def _seed() -> list[Template]:
    agreement = Template(
        id="EmuTemplate00000000001",
        name="Service agreement template",
        date_created=seed_day(5, 9),
        roles=["Client", "Sender"],
        fields=[
            TemplateField(
                "5b1e6a52-4f0c-4a61-9a59-3c1f0d6d0a01", "Company.Name", "text1", "text", "Client",
                placeholder="Company name",
            ),
            TemplateField(
                "5b1e6a52-4f0c-4a61-9a59-3c1f0d6d0a02", "Signature", "signature1", "signature",
                "Client",
            ),
        ],
        tokens=[{"name": "Client.Company", "value": ""}],
        tags=["agreement"],
        folder_uuid=None,
    )  # fmt: skip
    quote = Template(
        id="EmuTemplate00000000002",
        name="Quote template",
        date_created=seed_day(6, 9),
        roles=["Client"],
        tags=["quote"],
    )
    return [agreement, quote]


class TemplateStore:
    def __init__(self) -> None:
        self._templates = {template.id: template for template in _seed()}

    def get(self, template_id: str) -> Template | None:
        return self._templates.get(template_id)

    def search(
        self,
        *,
        q: str | None = None,
        tags: list[str] | None = None,
        folder_uuid: str | None = None,
        template_id: str | None = None,
    ) -> list[Template]:
        found = sorted(self._templates.values(), key=lambda t: t.date_created, reverse=True)
        if q:
            found = [t for t in found if q.casefold() in t.name.casefold()]
        if tags:
            found = [t for t in found if set(tags) & set(t.tags)]
        if folder_uuid:
            found = [t for t in found if t.folder_uuid == folder_uuid]
        if template_id:
            found = [t for t in found if t.id == template_id]
        return found

    def delete(self, template_id: str) -> bool:
        return self._templates.pop(template_id, None) is not None
