"""Payout statements: which gifts (and clawbacks, adjustments) each payout pays.

How a payout maps to gifts (docs/statements-and-live.md). A payout pays "all available
diamonds", and available diamonds come from releases of matured pending credits, oldest
first (the creator's release watermark). So the statement is a **FIFO allocation**: the
creator's *source entries*, in ledger order (``created_at``, id), are

- credits to ``diamonds_pending`` by gifts (and by a won dispute's reversal),
- debits from ``diamonds_pending`` by chargeback clawbacks (negative lines),
- staff adjustments of ``diamonds_available``;

internal moves (release, payout created / paid / failed) are not sources. Each payout takes
every unallocated negative entry made before it (whole: a clawback shows on the statement of
the period it happened in), then the oldest unallocated positive entries until the lines sum
to its diamonds; the last one may be split between two payouts (two partial lines).
Lines are written with the payout in the same transaction and never change. A failed or
cancelled payout keeps its lines as its statement, but they stop counting as allocated, so
the next payout takes the same diamonds again (its diamonds went back to available).

The unallocated source entries net to the creator's pending + available balance when the payout
is made (never negative), and the payout takes all of available, so there are always enough
positive entries; ``verify_ledger`` checks every payout's lines sum to its diamonds and
that no entry is allocated beyond its amount.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Max, Sum

from config.keyset import keyset
from payouts.models import Payout, PayoutStatementLine, PayoutStatus, StatementLineKind
from wallets.models import Account, AccountKind, Entry, TransactionKind

# Internal moves between a creator's own accounts: not where diamonds come from.
NOT_SOURCES = [
    TransactionKind.RELEASE,
    TransactionKind.PAYOUT_CREATED,
    TransactionKind.PAYOUT_PAID,
    TransactionKind.PAYOUT_FAILED,
]
VOID_STATUSES = [PayoutStatus.FAILED, PayoutStatus.CANCELLED]
# Entries are stamped when their transaction starts and become visible when it commits; a
# source entry stamped shortly before the last allocated one may have committed after that
# allocation. Rescanning this far back picks such stragglers up (each is still taken once).
LATE_COMMIT_MARGIN = timedelta(hours=1)
# Source entries read a query at a time.
ALLOCATE_PAGE = 5000

LINE_KIND: dict[str, StatementLineKind] = {
    TransactionKind.GIFT: StatementLineKind.GIFT,
    TransactionKind.MEMBERSHIP: StatementLineKind.MEMBERSHIP,
    TransactionKind.CLAWBACK: StatementLineKind.CHARGEBACK,
    TransactionKind.REVERSAL: StatementLineKind.CHARGEBACK_REVERSAL,
}


def _source_accounts(user_id: int) -> list[int]:
    return list(
        Account.objects.filter(
            user_id=user_id,
            kind__in=[AccountKind.DIAMONDS_PENDING, AccountKind.DIAMONDS_AVAILABLE],
        ).values_list("pk", flat=True)
    )


def statement_allocate(*, payout: Payout) -> list[PayoutStatementLine]:
    """Write ``payout``'s statement lines: the next unallocated source entries, FIFO.

    Called once, in the transaction that creates the payout (one open payout per creator and
    the batch's advisory lock mean no other allocation for this creator runs beside it).
    """
    creator_id = payout.creator_id
    allocated_lines = PayoutStatementLine.objects.filter(payout__creator_id=creator_id).exclude(
        payout__status__in=VOID_STATUSES
    )
    # The cursor is the newest *positive* line: positives are taken oldest first, so every
    # positive entry before it is allocated. (A clawback line can be newer than positives still
    # unallocated: counting it would skip them for good.)
    cursor = allocated_lines.filter(diamonds__gt=0).aggregate(last=Max("occurred_at"))["last"]
    since = cursor - LATE_COMMIT_MARGIN if cursor else None

    entries = Entry.objects.filter(account_id__in=_source_accounts(payout.creator.user_id)).exclude(
        transaction__kind__in=NOT_SOURCES
    )
    taken = allocated_lines
    if since is not None:
        entries = entries.filter(created_at__gte=since)
        taken = taken.filter(occurred_at__gte=since)
    already = dict(
        taken.values("entry_id").annotate(total=Sum("diamonds")).values_list("entry_id", "total")
    )

    # Oldest first, a page of ALLOCATE_PAGE a query (keyset: no server-side cursor, #23).
    rows = keyset(
        entries.values_list("id", "transaction_id", "transaction__kind", "amount", "created_at"),
        order=("created_at", "id"),
        size=ALLOCATE_PAGE,
        key=lambda row: (row[4], row[0]),
    )
    # Every clawback (or negative adjustment) made before this payout is on it, whole; the
    # positive entries then fill it oldest first, the last one possibly in part.
    unallocated = []
    for entry_id, transaction_id, tx_kind, amount, created_at in rows:
        left = amount - already.get(entry_id, 0)
        if left != 0 and (left > 0 or created_at <= payout.created_at):
            unallocated.append((entry_id, transaction_id, tx_kind, amount, created_at, left))
    need = payout.diamonds - sum(row[5] for row in unallocated if row[5] < 0)
    lines: list[PayoutStatementLine] = []
    for entry_id, transaction_id, tx_kind, amount, created_at, left in unallocated:
        if left > 0:
            if need <= 0:
                continue
            take = min(left, need)
            need -= take
        else:
            take = left
        lines.append(
            PayoutStatementLine(
                payout=payout,
                position=len(lines) + 1,
                kind=LINE_KIND.get(tx_kind, StatementLineKind.ADJUSTMENT),
                entry_id=entry_id,
                transaction_id=transaction_id,
                diamonds=take,
                entry_diamonds=amount,
                occurred_at=created_at,
            )
        )
    # A shortfall would mean diamonds with no source in the ledger: leave the lines short so
    # verify_ledger reports the payout rather than inventing a source.
    PayoutStatementLine.objects.bulk_create(lines, batch_size=5000)
    return lines
