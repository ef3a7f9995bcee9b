"""Payout statements: which gifts (and clawbacks, adjustments) each payout pays.

- ``allocation``: the write, ``statement_allocate`` (the FIFO allocation of source entries,
  run inside the payout-creating transaction), and the rules the set-based batch shares;
- ``reading``: a statement as the creator reads it, and following one gift to its payout;
- ``downloads``: the CSV and PDF downloads.
"""

from payouts.statements.allocation import (
    LATE_COMMIT_MARGIN,
    LINE_KIND,
    NOT_SOURCES,
    VOID_STATUSES,
    statement_allocate,
)
from payouts.statements.downloads import CSV_COLUMNS, statement_csv, statement_pdf
from payouts.statements.reading import (
    GiftTrace,
    Statement,
    StatementGroup,
    StatementRow,
    gift_trace,
    payout_for_creator,
    payout_statement,
)

__all__ = [
    "CSV_COLUMNS",
    "LATE_COMMIT_MARGIN",
    "LINE_KIND",
    "NOT_SOURCES",
    "VOID_STATUSES",
    "GiftTrace",
    "Statement",
    "StatementGroup",
    "StatementRow",
    "gift_trace",
    "payout_for_creator",
    "payout_statement",
    "statement_allocate",
    "statement_csv",
    "statement_pdf",
]
