"""Payout statements as PDF documents (fpdf2), laid out for a creator's accountant.

One A4 document: a header with the creator, the payout and the period it covers, a summary of
the totals, then one table per day and context (a live, a video, the profile, memberships,
chargebacks, adjustments) whose title and column headings are repeated on every page it runs
onto, with a subtotal row; the currency note as wrapped text; "Page N of M" on every page. A
line gets a footnote mark only when it needs one (a gift split between two payouts, a gift
credited at another rate than today's), and a table's notes are printed under it only then.

Text is Unicode: DejaVu Sans (Latin, Greek, Cyrillic, …), with Droid Sans Fallback for what
DejaVu lacks (CJK among them), both bundled in ``payouts/fonts`` with their licences, so a
creator named "Łukasz", "李雷" or "Ñandú" prints as written. The fallback font is embedded
only in statements that need it.

Table rows are drawn with fpdf2's low-level ``text`` (a few times faster than its ``table``):
a statement of thousands of lines renders in seconds. Past ``DETAIL_LINES_MAX`` lines the PDF
lists each table's subtotal only and points to the CSV, which always has every line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    from payouts.statements import Statement, StatementGroup, StatementRow

# fontTools logs every subsetting step at INFO: keep it out of the application's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "dejavu"
FALLBACK = "droidfallback"
FONT_FILES = {
    (FONT, ""): "DejaVuSans.ttf",
    (FONT, "B"): "DejaVuSans-Bold.ttf",
    (FALLBACK, ""): "DroidSansFallbackFull.ttf",
}
DETAIL_LINES_MAX = 5000  # ~90 pages; the CSV has every line
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


def _columns(currency: str) -> tuple[Column, ...]:
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
def _dejavu_codepoints() -> frozenset[int]:
    font = TTFont(FONT_DIR / FONT_FILES[(FONT, "")], lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def _number(value: int) -> str:
    return f"{value:,}"  # 12,345: grouped as on the statement page


def _money(value: Decimal, places: str = "0.01") -> str:
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
        covered = _dejavu_codepoints()
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
class _Footnotes:
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


# --- The document ----------------------------------------------------------------------------


def statement_pdf(statement: Statement) -> bytes:
    payout = statement.payout
    creator = payout.creator
    period = _period(statement)
    who = f"{creator.display_name} (@{creator.handle})"
    pdf = StatementDocument(
        running_head=f"Applause payout statement #{payout.pk} · {who} · {period}",
        fallback=_needs_fallback(statement),
    )
    pdf.set_title(f"Applause payout statement #{payout.pk}")
    pdf.set_author("Applause")
    pdf.set_subject(f"Payout #{payout.pk} to {who}")
    pdf.set_creator("Applause")
    pdf.add_page()
    _header(pdf, statement, period)
    _summary(pdf, statement)
    if len(statement.lines) <= DETAIL_LINES_MAX:
        for group in statement.groups:
            _group(pdf, statement, group)
    else:
        _group_totals(pdf, statement)
    _closing(pdf, statement)
    return bytes(pdf.output())


def _texts(statement: Statement) -> Iterator[str]:
    creator = statement.payout.creator
    yield creator.display_name
    yield creator.handle
    for group in statement.groups:
        yield group.label
        for row in group.rows:
            yield row.sender
            yield row.gift
            yield row.memo


def _needs_fallback(statement: Statement) -> bool:
    covered = _dejavu_codepoints()
    return any(ord(ch) not in covered for text in _texts(statement) for ch in text)


def _period(statement: Statement) -> str:
    times = [row.occurred_at for row in statement.lines]
    if not times:
        return "no lines"
    first, last = min(times).date(), max(times).date()
    return f"{first:%d %b %Y}" if first == last else f"{first:%d %b %Y} – {last:%d %b %Y}"


def _when(moment: datetime | None) -> str:
    return f"{moment:%d %b %Y, %H:%M} UTC" if moment else "—"


def _paragraph(pdf: StatementDocument, text: str, *, size: float, line: float) -> None:
    pdf.use("", size)
    pdf.multi_cell(0, line, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _header(pdf: StatementDocument, statement: Statement, period: str) -> None:
    payout = statement.payout
    creator = payout.creator
    pdf.use("B", 16)
    pdf.cell(0, 8, "Payout statement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use("", 9)
    pdf.set_text_color(MUTED)
    pdf.cell(0, 5, "Applause", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.ln(3)
    facts = [
        ("Creator", f"{creator.display_name} (@{creator.handle})"),
        ("Payout", f"#{payout.pk} · {payout.get_status_display()}"),
        ("Period", f"{period} (the days the diamonds below were earned)"),
        ("Requested", _when(payout.created_at)),
        ("Paid", _when(payout.paid_at)),
        ("Currency", f"{statement.currency}; times are UTC"),
        (
            "Rates",
            f"{statement.diamonds_per_coin} diamond(s) per coin gifted; one diamond is worth "
            f"{statement.diamond_value.normalize():f} {statement.currency}",
        ),
    ]
    for label, value in facts:
        pdf.use("B", 9)
        pdf.cell(24, 5, label)
        pdf.use("", 9)
        pdf.multi_cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if statement.is_void:
        pdf.ln(2)
        again = ", ".join(f"#{pk}" for pk in statement.paid_again_by)
        pdf.use("B", 9)
        pdf.multi_cell(
            0,
            5,
            f"This payout was {payout.get_status_display().lower()}: nothing was paid by it, and "
            "its diamonds went back to the balance"
            + (f" and were paid again by payout {again}." if again else "."),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    pdf.ln(4)


def _summary(pdf: StatementDocument, statement: Statement) -> None:
    cur = statement.currency
    pdf.use("B", 11)
    pdf.cell(0, 7, "Summary", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    columns = (
        Column("", 50),
        Column("Diamonds", 35, right=True),
        Column(f"Value ({cur})", 35, True),
    )
    heading_row(pdf, columns)
    for label, diamonds in (
        ("Gifts", statement.gift_diamonds),
        ("Memberships", statement.membership_diamonds),
        ("Chargebacks", statement.chargeback_diamonds),
        ("Adjustments", statement.adjustment_diamonds),
    ):
        table_row(pdf, columns, [label, f"{_number(diamonds)} diamonds", ""])
    table_row(
        pdf,
        columns,
        [
            "Total",
            f"{_number(statement.diamonds)} diamonds",
            _money(statement.gross_value, "0.0001"),
        ],
        style="B",
    )
    table_row(pdf, columns, ["Fees", "", _money(statement.fees.amount)])
    table_row(
        pdf, columns, ["Rounding (to the cent)", "", _money(statement.rounding.amount, "0.0001")]
    )
    table_row(
        pdf, columns, ["Amount paid", "", f"{_money(statement.amount.amount)} {cur}"], style="B"
    )
    pdf.ln(6)


def _group(pdf: StatementDocument, statement: Statement, group: StatementGroup) -> None:
    columns = _columns(statement.currency)
    title = f"{group.day:%a %d %b %Y} · {group.label}"
    if pdf.get_y() + 6 + 3 * (ROW_LINE + 2 * VPAD) > pdf.page_break_trigger:
        pdf.add_page()  # a title stays with its headings and first line
    pdf.use("B", 9.5)
    pdf.cell(0, 6, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    heading_row(pdf, columns)
    pdf.continued = (title, columns)
    notes = _Footnotes(rate=Fraction(statement.diamonds_per_coin))
    for row in group.rows:
        marks = notes.marks(row)
        diamonds = _number(row.diamonds)
        if row.is_partial:
            diamonds += f" of {_number(row.entry_diamonds)}"
        table_row(
            pdf,
            columns,
            [
                f"{row.occurred_at:%H:%M}",
                str(row.transaction_id),
                row.sender or row.kind_label,
                row.gift or row.memo,
                _number(row.quantity) if row.quantity is not None else "",
                _number(row.coins) if row.coins is not None else "",
                diamonds + marks,
                _money(row.value, "0.0001"),
            ],
        )
    subtotal = f"Subtotal, {group.gifts} gift(s)" if group.gifts else "Subtotal"
    value = sum((r.value for r in group.rows), Decimal(0))
    table_row(
        pdf,
        (Column("", sum(c.width for c in columns[:6])), columns[6], columns[7]),
        [subtotal, _number(group.diamonds), _money(value, "0.0001")],
        style="B",
    )
    pdf.continued = None
    pdf.ln(0.8)
    for text in notes.texts():
        _paragraph(pdf, text, size=7, line=3.4)
    pdf.ln(5)


def _group_totals(pdf: StatementDocument, statement: Statement) -> None:
    cur = statement.currency
    _paragraph(
        pdf,
        f"This statement has {_number(len(statement.lines))} lines: more than this document "
        f"lists ({_number(DETAIL_LINES_MAX)}). Below is each day's subtotal by live, video "
        "and kind; the CSV download of this statement has every line.",
        size=8.5,
        line=4.2,
    )
    pdf.ln(2)
    columns = (
        Column("Day", 30),
        Column("Where", 70),
        Column("Lines", 20, right=True),
        Column("Diamonds", 30, right=True),
        Column(f"Value ({cur})", 30, right=True),
    )
    heading_row(pdf, columns)
    pdf.continued = ("Subtotals by day", columns)
    for group in statement.groups:
        value = sum((r.value for r in group.rows), Decimal(0))
        table_row(
            pdf,
            columns,
            [
                f"{group.day:%a %d %b %Y}",
                group.label,
                _number(len(group.rows)),
                _number(group.diamonds),
                _money(value, "0.0001"),
            ],
        )
    pdf.continued = None
    pdf.ln(5)


def _closing(pdf: StatementDocument, statement: Statement) -> None:
    if pdf.get_y() + 40 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.use("B", 10)
    pdf.multi_cell(
        0,
        6,
        f"Total: {_number(statement.diamonds)} diamonds · amount paid "
        f"{_money(statement.amount.amount)} {statement.currency}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(2)
    pdf.use("B", 9)
    pdf.cell(0, 5, "Currency", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _paragraph(pdf, statement.conversion_note, size=8.5, line=4.2)
    pdf.ln(2)
    pdf.set_text_color(MUTED)
    _paragraph(
        pdf,
        "Each line is one ledger entry: its ledger tx number finds the gift on the gift trace "
        "page of the creator portal and in this statement's CSV download. A line's value is its "
        "diamonds times the diamond value, to four decimals; the amount paid is rounded down to "
        "the cent.",
        size=7.5,
        line=3.6,
    )
    pdf.set_text_color(0)
