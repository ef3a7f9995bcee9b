"""A minimal PDF writer for text documents (statements): monospaced lines, A4, many pages.

No dependency: PDF 1.4 with the standard Courier font (every reader has it), uncompressed
content streams, WinAnsi (Latin-1) text. Characters outside Latin-1 print as '?'.
"""

from __future__ import annotations

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 portrait, points
MARGIN = 36
FONT_SIZE = 7.5
LEADING = 10
LINES_PER_PAGE = int((PAGE_HEIGHT - 2 * MARGIN) // LEADING) - 1


def _escape(text: str) -> bytes:
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(lines: list[str], *, title: str = "") -> bytes:
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
    info = add(b"<< /Title (" + _escape(title) + b") /Producer (Applause) >>")
    page_ids = []
    for number, page_lines in enumerate(pages, start=1):
        stream = [b"BT", f"/F1 {FONT_SIZE} Tf {LEADING} TL".encode()]
        stream.append(f"{MARGIN} {PAGE_HEIGHT - MARGIN} Td".encode())
        for line in page_lines:
            stream.append(b"(" + _escape(line) + b") Tj T*")
        stream.append(b"ET")
        footer = f"page {number} of {len(pages)}"
        stream.append(
            f"BT /F1 {FONT_SIZE} Tf {PAGE_WIDTH - MARGIN - 60} {MARGIN / 2} Td ".encode()
            + b"("
            + _escape(footer)
            + b") Tj ET"
        )
        content = b"\n".join(stream)
        content_id = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_id, PAGE_WIDTH, PAGE_HEIGHT, font, content_id)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref,
    )
    return bytes(out)
