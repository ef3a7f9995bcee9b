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
                    _csv_safe(row.memo),
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
            [pid, "", "", "", "", kind, *empty, "", "", "", "", diamonds, value, statement.currency]
            + [""]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    # Gift messages are viewers' text: keep a spreadsheet from reading them as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_pdf(statement: Statement) -> bytes:
    from payouts.pdf import text_pdf

    payout = statement.payout
    lines = [
        f"Applause payout statement - payout #{payout.pk}",
        f"Creator @{payout.creator.handle}   status: {payout.get_status_display()}",
        f"Requested {payout.created_at:%Y-%m-%d %H:%M} UTC"
        + (f"   paid {payout.paid_at:%Y-%m-%d %H:%M} UTC" if payout.paid_at else ""),
        "",
        f"Rate: {statement.diamonds_per_coin} diamond(s) per coin gifted",
        f"Diamond value: {statement.diamond_value.normalize()} {statement.currency}",
        "",
    ]
    header = f"{'Time':<6}{'Tx':>9}  {'Sender':<16}{'Gift':<16}{'Qty':>5}{'Coins':>8}{'Dia/coin':>9}{'Diamonds':>11}{'Value':>12}"
    for group in statement.groups:
        lines.append(
            f"{group.day:%a %d %b %Y} - {group.label}: {group.diamonds:,} diamonds".replace(
                ",", " "
            )
        )
        lines.append(header)
        for row in group.rows:
            who = row.sender or row.kind_label
            what = row.gift or (row.memo[:30] if row.memo else "")
            partial = "*" if row.is_partial else " "
            lines.append(
                f"{row.occurred_at:%H:%M} {row.transaction_id:>9}  {who[:15]:<16}{what[:15]:<16}"
                f"{row.quantity if row.quantity is not None else '':>5}"
                f"{row.coins if row.coins is not None else '':>8}"
                f"{row.diamonds_per_coin:>9}{row.diamonds:>10}{partial}"
                f"{_money_str(row.value):>12}"
            )
        lines.append("")
    lines += [
        "* part of this gift's diamonds is paid by another payout",
        "",
        f"Gifts:                {statement.gift_diamonds:>12} diamonds",
        f"Memberships:          {statement.membership_diamonds:>12} diamonds",
        f"Chargebacks:          {statement.chargeback_diamonds:>12} diamonds",
        f"Adjustments:          {statement.adjustment_diamonds:>12} diamonds",
        f"Total:                {statement.diamonds:>12} diamonds",
        f"Value:                {_money_str(statement.gross_value):>12} {statement.currency}",
        f"Fees:                 {statement.fees.amount:>12} {statement.currency}",
        f"Rounding (to cent):   {statement.rounding.amount:>12} {statement.currency}",
        f"Amount paid:          {statement.amount.amount:>12} {statement.currency}",
        "",
        "Currency conversion: " + statement.conversion_note,
    ]
    return text_pdf(lines, title=f"Applause payout #{payout.pk}")
