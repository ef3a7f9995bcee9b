"""Helpers shared by every app's tests (import them from here, not from conftest)."""

from __future__ import annotations

import io

from pypdf import PdfReader


def pdf_pages(body: bytes) -> list[str]:
    """The text of each page of a PDF, as a reader (or an accountant's tool) extracts it."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(body)).pages]


def pdf_text(body: bytes) -> str:
    return "\n".join(pdf_pages(body))
