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

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from fpdf.enums import XPos, YPos

from payouts.pdf.layout import (
    MUTED,
    ROW_LINE,
    VPAD,
    Column,
    Footnotes,
    StatementDocument,
    columns_for,
    dejavu_codepoints,
    heading_row,
    money_text,
    number_text,
    table_row,
)

if TYPE_CHECKING:
    from payouts.statements import Statement, StatementGroup

DETAIL_LINES_MAX = 5000  # ~90 pages; the CSV has every line

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
    covered = dejavu_codepoints()
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
        table_row(pdf, columns, [label, f"{number_text(diamonds)} diamonds", ""])
    table_row(
        pdf,
        columns,
        [
            "Total",
            f"{number_text(statement.diamonds)} diamonds",
            money_text(statement.gross_value, "0.0001"),
        ],
        style="B",
    )
    table_row(pdf, columns, ["Fees", "", money_text(statement.fees.amount)])
    table_row(
        pdf,
        columns,
        ["Rounding (to the cent)", "", money_text(statement.rounding.amount, "0.0001")],
    )
    table_row(
        pdf, columns, ["Amount paid", "", f"{money_text(statement.amount.amount)} {cur}"], style="B"
    )
    pdf.ln(6)


def _group(pdf: StatementDocument, statement: Statement, group: StatementGroup) -> None:
    columns = columns_for(statement.currency)
    title = f"{group.day:%a %d %b %Y} · {group.label}"
    if pdf.get_y() + 6 + 3 * (ROW_LINE + 2 * VPAD) > pdf.page_break_trigger:
        pdf.add_page()  # a title stays with its headings and first line
    pdf.use("B", 9.5)
    pdf.cell(0, 6, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    heading_row(pdf, columns)
    pdf.continued = (title, columns)
    notes = Footnotes(rate=Fraction(statement.diamonds_per_coin))
    for row in group.rows:
        marks = notes.marks(row)
        diamonds = number_text(row.diamonds)
        if row.is_partial:
            diamonds += f" of {number_text(row.entry_diamonds)}"
        table_row(
            pdf,
            columns,
            [
                f"{row.occurred_at:%H:%M}",
                str(row.transaction_id),
                row.sender or row.kind_label,
                row.gift or row.memo,
                number_text(row.quantity) if row.quantity is not None else "",
                number_text(row.coins) if row.coins is not None else "",
                diamonds + marks,
                money_text(row.value, "0.0001"),
            ],
        )
    subtotal = f"Subtotal, {group.gifts} gift(s)" if group.gifts else "Subtotal"
    value = sum((r.value for r in group.rows), Decimal(0))
    table_row(
        pdf,
        (Column("", sum(c.width for c in columns[:6])), columns[6], columns[7]),
        [subtotal, number_text(group.diamonds), money_text(value, "0.0001")],
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
        f"This statement has {number_text(len(statement.lines))} lines: more than this document "
        f"lists ({number_text(DETAIL_LINES_MAX)}). Below is each day's subtotal by live, video "
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
                number_text(len(group.rows)),
                number_text(group.diamonds),
                money_text(value, "0.0001"),
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
        f"Total: {number_text(statement.diamonds)} diamonds · amount paid "
        f"{money_text(statement.amount.amount)} {statement.currency}",
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
