"""A statement as a download: CSV (spreadsheet-safe) and PDF."""

from __future__ import annotations

import csv
import io
from decimal import ROUND_DOWN, Decimal

from payouts.statements.reading import Statement

CSV_COLUMNS = [
    "payout_id",
    "line",
    "day",
    "context",
    "context_id",
    "kind",
    "occurred_at",
    "ledger_transaction_id",
    "gift_event_id",
    "sender",
    "gift",
    "quantity",
    "coins",
    "diamonds_per_coin",
    "entry_diamonds",
    "diamonds",
    "value",
    "currency",
    "memo",
]


def _money_str(value: Decimal, places: str = "0.0001") -> str:
    return str(value.quantize(Decimal(places), rounding=ROUND_DOWN))


def statement_csv(statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    pid = statement.payout.pk
    for group in statement.groups:
        for row in group.rows:
            writer.writerow(
                [
                    pid,
                    row.position,
                    group.day.isoformat(),
                    group.context,
                    group.context_id,
                    row.kind,
                    row.occurred_at.isoformat(),
                    row.transaction_id,
                    row.gift_event_id or "",
                    row.sender,
                    row.gift,
                    row.quantity if row.quantity is not None else "",
                    row.coins if row.coins is not None else "",
                    row.diamonds_per_coin,
                    row.entry_diamonds,
                    row.diamonds,
                    _money_str(row.value),
                    statement.currency,
                    csv_safe(row.memo),
                ]
            )
    # Summary rows: same columns, ``kind`` says what they are.
    empty = [""] * 5
    for kind, diamonds, value in (
        ("total", statement.diamonds, _money_str(statement.gross_value)),
        ("fees", "", str(statement.fees.amount)),
        ("rounding", "", str(statement.rounding.amount)),
        ("amount_paid", statement.payout.diamonds, str(statement.amount.amount)),
    ):
        writer.writerow(
            [
                pid,
                "",
                "",
                "",
                "",
                kind,
                *empty,
                "",
                "",
                "",
                "",
                diamonds,
                value,
                statement.currency,
                "",
            ]
        )
    return out.getvalue()


def csv_safe(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading
    quote (CSV injection). For anything people typed: gift messages, account holders' names."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_pdf(statement: Statement) -> bytes:
    from payouts.pdf import statement_pdf as render  # fpdf2 and its fonts load on first use

    return render(statement)
