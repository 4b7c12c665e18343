"""A tiny but valid one-page PDF, so "download a document" returns a real file.

Clients of the real API often check the magic bytes or hand the file to a PDF
library; an emulator answering with junk would hide bugs in that code path.
"""

from __future__ import annotations


def _pdf_text(text: str) -> bytes:
    """``text`` as a PDF literal string body: Latin-1, with ``\\ ( )`` escaped."""
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def render_pdf(title: str, subtitle: str = "") -> bytes:
    """A one-page PDF 1.4 with ``title`` (and ``subtitle``) set in Helvetica.

    The cross-reference table is computed from the real byte offsets, so strict
    readers accept the file without a repair pass.
    """
    content = (
        b"BT /F1 18 Tf 72 720 Td (" + _pdf_text(title) + b") Tj ET\n"
        b"BT /F1 11 Tf 72 696 Td (" + _pdf_text(subtitle) + b") Tj ET\n"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)
