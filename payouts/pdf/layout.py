"""The statement PDF's layout: the bundled Unicode fonts, the A4 document with its running
head and page numbers, table rows drawn with fpdf2's low-level ``text``, and footnote marks.
What goes on the page is ``payouts.pdf`` (the document)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont

if TYPE_CHECKING:
    from payouts.statements import StatementRow

# fontTools logs every subsetting step at INFO: keep it out of the application's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)


FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
FONT = "dejavu"
FALLBACK = "droidfallback"
FONT_FILES = {
    (FONT, ""): "DejaVuSans.ttf",
    (FONT, "B"): "DejaVuSans-Bold.ttf",
    (FALLBACK, ""): "DroidSansFallbackFull.ttf",
}
MARGIN = 15.0  # mm
BOTTOM = 20.0  # room for the page number
PAD = 1.2  # cell padding, mm
VPAD = 0.8
ROW_LINE = 3.6  # height of one text line in a table row, mm
TABLE_SIZE = 7.5  # pt
GREY_FILL = 236
RULE_GREY = 200
MUTED = 90
PARTIAL_MARK = "*"
RATE_MARK = "†"


@dataclass(frozen=True)
class Column:
    heading: str
    width: float  # mm
    right: bool = False


def columns_for(currency: str) -> tuple[Column, ...]:
    return (
        Column("Time", 11),
        Column("Ledger tx", 19),
        Column("From", 35),
        Column("Gift / note", 46),
        Column("Qty", 10, right=True),
        Column("Coins", 15, right=True),
        Column("Diamonds", 21, right=True),
        Column(f"Value ({currency})", 23, right=True),
    )


@cache
def dejavu_codepoints() -> frozenset[int]:
    font = TTFont(FONT_DIR / FONT_FILES[(FONT, "")], lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def number_text(value: int) -> str:
    return f"{value:,}"  # 12,345: grouped as on the statement page


def money_text(value: Decimal, places: str = "0.01") -> str:
    value = value.quantize(Decimal(places), rounding=ROUND_DOWN)
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):f}".partition(".")
    return f"{sign}{int(whole):,}" + (f".{fraction}" if fraction else "")


class StatementDocument(FPDF):
    """A4 pages with a running head, the current table's headings, and "Page N of M"."""

    def __init__(self, *, running_head: str, fallback: bool) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.running_head = running_head
        self.fallback = fallback
        self.continued: tuple[str, tuple[Column, ...]] | None = None
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=BOTTOM)
        for (family, style), name in FONT_FILES.items():
            if family == FONT or fallback:
                self.add_font(family, style, FONT_DIR / name)
        if fallback:
            self.set_fallback_fonts([FALLBACK], exact_match=False)
        self.alias_nb_pages()
        self.style = ""
        self.size = 9.0

    # --- fonts and text ------------------------------------------------------------------

    def use(self, style: str = "", size: float | None = None) -> None:
        self.style, self.size = style, size or self.size
        self.set_font(FONT, style, self.size)

    def _runs(self, text: str) -> Iterator[tuple[str, str]]:
        """(family, text) runs: DejaVu where it has the glyph, the fallback elsewhere."""
        covered = dejavu_codepoints()
        if not self.fallback or all(ord(ch) in covered for ch in text):
            yield FONT, text
            return
        run, family = "", FONT
        for ch in text:
            wanted = FONT if ord(ch) in covered or ch.isspace() else FALLBACK
            if wanted != family and run:
                yield family, run
                run = ""
            run, family = run + ch, wanted
        if run:
            yield family, run

    def _advance(self, family: str, text: str) -> float:
        # The font's advance widths, summed (what get_string_width does, without its per-call
        # bookkeeping: a long statement measures every cell).
        font = self.fonts[family + (self.style if family == FONT else "")]
        if not isinstance(font, TTFFont):
            raise TypeError(f"{family} is not an embedded TrueType font")
        return sum(font.cw[ord(ch)] for ch in text) * self.size * 0.001 / self.k

    def width_of(self, text: str) -> float:
        return sum(self._advance(family, run) for family, run in self._runs(text))

    def draw(self, x: float, baseline: float, text: str) -> None:
        for family, run in self._runs(text):
            if family == FONT:
                self.text(x, baseline, run)
            else:
                self.set_font(family, "", self.size)
                self.text(x, baseline, run)
                self.set_font(FONT, self.style, self.size)
            x += self._advance(family, run)

    def wrap(self, text: str, width: float) -> list[str]:
        """Lines of ``text`` no wider than ``width``: at spaces, inside a word only if it must."""
        if self.width_of(text) <= width:
            return [text]
        lines: list[str] = []
        line = ""
        for word in text.split(" "):
            candidate = f"{line} {word}" if line else word
            if self.width_of(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # a word wider than the column is cut where it must be
                if line and self.width_of(line + ch) > width:
                    lines.append(line)
                    line = ""
                line += ch
        if line:
            lines.append(line)
        return lines or [""]

    # --- page furniture ------------------------------------------------------------------

    def header(self) -> None:
        if self.page_no() == 1:
            return
        style, size = self.style, self.size
        self.use("", 7.5)
        self.set_text_color(MUTED)
        self.draw(self.l_margin, MARGIN - 4, self.running_head)
        self.set_text_color(0)
        self.set_y(MARGIN)
        if self.continued is not None:
            title, columns = self.continued
            self.use("B", 9.5)
            self.cell(0, 6, f"{title} (continued)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            heading_row(self, columns)
        self.use(style, size)

    def footer(self) -> None:
        style, size = self.style, self.size
        self.use("", 7.5)
        self.set_text_color(MUTED)
        self.set_y(-13)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0)
        self.use(style, size)


def table_row(
    pdf: StatementDocument,
    columns: Sequence[Column],
    cells: Sequence[str],
    *,
    style: str = "",
    fill: bool = False,
    rule: bool = True,
) -> None:
    """One table row: wrapped cells, a new page (with the headings again) if it does not fit."""
    pdf.use(style, TABLE_SIZE)
    lines = [pdf.wrap(text, col.width - 2 * PAD) for col, text in zip(columns, cells, strict=True)]
    height = max(len(cell) for cell in lines) * ROW_LINE + 2 * VPAD
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
        pdf.use(style, TABLE_SIZE)
    top = pdf.get_y()
    if fill:
        pdf.set_fill_color(GREY_FILL)
        pdf.rect(pdf.l_margin, top, sum(c.width for c in columns), height, style="F")
    x = pdf.l_margin
    for col, cell_lines in zip(columns, lines, strict=True):
        for number, text in enumerate(cell_lines, start=1):
            left = x + col.width - PAD - pdf.width_of(text) if col.right else x + PAD
            pdf.draw(left, top + VPAD + number * ROW_LINE - 0.9, text)
        x += col.width
    if rule:
        pdf.set_draw_color(RULE_GREY)
        pdf.set_line_width(0.15)
        pdf.line(pdf.l_margin, top + height, x, top + height)
    pdf.set_y(top + height)


def heading_row(pdf: StatementDocument, columns: Sequence[Column]) -> None:
    table_row(pdf, columns, [c.heading for c in columns], style="B", fill=True, rule=False)


@dataclass
class Footnotes:
    """Marks a line only when it needs a note; the notes then go under its table."""

    rate: Fraction
    partial: bool = False
    other_rate: bool = False

    def marks(self, row: StatementRow) -> str:
        marks = ""
        if row.is_partial:
            self.partial = True
            marks += PARTIAL_MARK
        if row.coins and row.diamonds_per_coin:
            credited = Fraction(row.diamonds_per_coin) * row.coins
            if credited != row.coins * self.rate // 1:
                self.other_rate = True
                marks += RATE_MARK
        return marks

    def texts(self) -> list[str]:
        notes = []
        if self.partial:
            notes.append(
                f"{PARTIAL_MARK} Only part of this line's diamonds is paid by this payout: the "
                "rest of it is on the statement of the payout before or after this one."
            )
        if self.other_rate:
            notes.append(
                f"{RATE_MARK} Credited at the rate in force when the gift was sent, not today's "
                f"{self.rate} diamond(s) per coin (the CSV's diamonds_per_coin column has it)."
            )
        return notes
