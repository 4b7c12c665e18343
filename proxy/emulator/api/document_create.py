"""``POST /public/v1/documents``: a document from a template, a PDF's URL or an upload.

The fields follow PandaDoc's DocumentCreateByTemplateRequest (``template_uuid`` and
``recipients`` required), DocumentCreateByPdfUrlRequest (``url`` and ``name`` required)
and, for a multipart upload, DocumentCreateByPdfRequest in the ``data`` part (``name``
required). A wrong field is a 400 ``validation_error`` naming it.
"""

from __future__ import annotations

from aiohttp import web

from ..bodies import read_json, read_upload
from ..model.document_views import create_view
from ..model.documents import Document, NewRecipient
from ..model.templates import Template
from ..validation import Fields
from .common import origin, state
from .operations import Operation

__all__ = ["OPERATIONS"]


def _recipient(fields: Fields) -> NewRecipient:
    email = fields.email("email", nullable=True)
    phone = fields.string("phone", nullable=True, blank=False)
    first_name = fields.string("first_name", nullable=True) or ""
    last_name = fields.string("last_name", nullable=True) or ""
    role = fields.string("role", nullable=True) or ""
    signing_order = fields.integer("signing_order", low=1)
    fields.mapping("delivery_methods")
    fields.mapping("redirect")
    if not fields.errors and not email and not phone:
        fields.errors["email"] = ["Either email or phone is required."]
    return NewRecipient(email, first_name, last_name, role, signing_order, phone)


def _token(fields: Fields) -> dict[str, str]:
    name = fields.string("name", required=True, blank=False) or ""
    value = fields.string("value", required=True) or ""
    return {"name": name, "value": value}


def _new_document(
    request: web.Request, fields: Fields, *, template: Template | None, source: str | None
) -> Document:
    """Read the fields every kind of create shares, then store the document."""
    emulator = state(request)
    name = fields.string("name", required=template is None, blank=False)
    recipients = fields.objects("recipients", _recipient, required=template is not None) or []
    tokens = fields.objects("tokens", _token) or []
    values = fields.mapping("fields") or {}
    metadata = fields.mapping("metadata") or {}
    tags = fields.strings("tags") or []
    folder_uuid = fields.string("folder_uuid", blank=False)
    for flag in ("detect_title_variables", "parse_form_fields"):
        fields.boolean(flag)
    fields.mapping("owner")
    if folder_uuid is not None and emulator.folders.get(folder_uuid) is None:
        fields.errors["folder_uuid"] = ["Folder not found."]
    if template is not None and template.roles:
        wrong = [r.role for r in recipients if r.role and r.role not in template.roles]
        if wrong:
            fields.errors["recipients"] = [f"Role {wrong[0]!r} is not a role of the template."]
    fields.done()
    return emulator.documents.create(
        name or (template.name if template else "Untitled document"),
        template=template,
        recipients=recipients,
        fields={
            key: value.get("value") if isinstance(value, dict) else value
            for key, value in values.items()
        },
        tokens=tokens,
        metadata=metadata,
        tags=tags,
        folder_uuid=folder_uuid,
        file_sha256=source,
        link_origin=origin(request),
    )


async def create_document(request: web.Request) -> web.Response:
    """``POST /public/v1/documents``: from a template or a URL (JSON), or from an uploaded
    PDF (multipart/form-data: a ``file`` part and a ``data`` part with the JSON fields)."""
    if request.content_type == "multipart/form-data":
        upload = await read_upload(request)
        doc = _new_document(request, Fields(upload.data), template=None, source=upload.file_sha256)
        return web.json_response(create_view(doc, origin(request)), status=201)
    fields = Fields(await read_json(request))
    template_uuid = fields.string("template_uuid", blank=False)
    url = fields.url("url")
    template = None
    if template_uuid is not None:
        template = state(request).templates.get(template_uuid)
        if template is None:
            fields.errors["template_uuid"] = ["Template not found."]
    elif url is None and "url" not in fields.errors:
        fields.errors["template_uuid"] = ["Either template_uuid or url is required."]
    doc = _new_document(request, fields, template=template, source=None)
    return web.json_response(create_view(doc, origin(request)), status=201)


OPERATIONS = [
    Operation(
        "createDocument",
        "POST",
        "/public/v1/documents",
        create_document,
        "create_from_template",
        invalid_type="validation_error",
        upload_operation_id="createDocumentFromUpload",
    ),
]
