"""The payout batch, set-based (PostgreSQL): a chunk of creators per transaction.

The due creators are read once when the batch starts; per chunk of ``PAYOUT_BATCH_CHUNK`` of
them (in creator id order), one database transaction, whose statements all start from the
chunk's id lists (never a scan of a whole table, which made each chunk slower than the last):

1. lock the creators' ``diamonds_available`` accounts in account id order and read the
   balances under the lock;
2. one ``INSERT … SELECT`` creates the payouts of every creator still due (verified method,
   at least the minimum, no open payout), with the amount, rail snapshot and the holds
   (approval threshold, missing tax form over the yearly threshold) computed in the same
   statement;
3. one insert of their creation events, one set-based ledger posting (available → in payout,
   ``wallets.services.bulk``), one ``INSERT … SELECT`` of the FIFO statement lines (the same
   lines ``payouts.statements.statement_allocate`` writes one payout at a time).

``PAYOUT_BATCH_WORKERS`` chunks run at once, each on its own connection (chunks hold disjoint
creators, so they never wait on each other). A crash (even SIGKILL) rolls back the chunks
that were running; the chunks before them are committed.
A rerun skips every creator with an open payout (and the partial unique index makes a second
open payout impossible anyway), so every creator is paid exactly once and none is skipped.
Sends are queued after each chunk commits, one Celery task per ``PAYOUT_SEND_TASK_SIZE``
payouts; each payout keeps its own idempotency key at the rail (``payout-<id>``).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from djmoney.money import Money

from payouts.models import OPEN_STATUSES, Payout, PayoutBatch, PayoutStatus, Rail, TaxFormStatus
from payouts.statements import LATE_COMMIT_MARGIN, NOT_SOURCES, VOID_STATUSES
from wallets.models import UNIT_OF_KIND, AccountKind, TransactionKind
from wallets.services.bulk import (
    Move,
    accounts_lock,
    chunks_in_parallel,
    int_array,
    ledger_move_bulk,
)

log = logging.getLogger(__name__)


def _in(values: Iterable[object]) -> list[str]:
    return [str(v) for v in values]


def chunks_of_due(*, size: int) -> Callable[[int], list[int]]:
    """``next_chunk(after)`` for ``chunks_in_parallel``: the next ``size`` due creator ids above
    ``after``, from ONE read of every due creator when the batch starts (re-checked under lock
    per chunk). One query per batch instead of one per chunk: a per-chunk query walks the
    accounts of every creator (the due ones are found through their balances), so its cost
    grew with the batch and the batch grew quadratically."""
    from payouts.services import payout_candidates

    due = [creator_id for creator_id, _user, _balance in payout_candidates()]

    def next_chunk(after: int) -> list[int]:
        start = bisect_right(due, after)
        return due[start : start + size]

    return next_chunk


@lru_cache(maxsize=4096)
def _money_label(amount: Decimal, currency: str) -> str:
    return str(Money(amount, currency))


def chunk_create(
    *, batch: PayoutBatch, creator_ids: list[int], actor_id: int | None, minimum: int
) -> list[tuple[int, int, str]]:
    """Create the payouts of one chunk; returns ``(payout id, diamonds, status)`` of each.

    Must run inside ``transaction.atomic`` (the chunk's transaction).
    """
    now = timezone.now()
    # Id lists go to PostgreSQL as array literals (``int_array``: one join, not psycopg's
    # per-element adaptation).
    ids_array = int_array(creator_ids)
    year_start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        # No JIT compilation for this transaction: the chunk's statements cost enough to cross
        # jit_above_cost, and compiling them (~0.2-0.5 s per statement, every chunk) cost more
        # than it saved (EXPLAIN ANALYZE at 100k creators, BENCHMARKS.md).
        cursor.execute("SET LOCAL jit = off")
        # Every statement of a chunk starts from id lists and reads by index. During a batch the
        # statistics lag the tables it fills (statement lines, payouts, in-payout accounts: empty
        # at the last analyze, millions of rows a minute later), and the plans made on them read
        # whole tables once per row (a chunk's statement lines took 120 s once, BENCHMARKS.md):
        # no sequential scan where an index serves, and no memoizing the per-entry probes (each
        # entry has its own journal row: every lookup missed).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_memoize = off")
        # A creator's first payout needs an in-payout account: created for the whole chunk in
        # one insert, then every account the chunk moves is locked in id order. The existence
        # test is one index probe per creator (OFFSET 0 keeps it a subplan): as an anti-join,
        # planned while the statistics still said "no in-payout accounts", it read every
        # in-payout account once per creator, up to 38 s per chunk late in a 100k batch.
        cursor.execute(
            "INSERT INTO wallets_account (kind, unit, user_id, balance, is_hot, is_frozen, "
            "frozen_reason, created_at) SELECT %(in_payout)s, %(unit)s, c.user_id, 0, false, "
            "false, '', %(now)s FROM creators_creator c WHERE c.id = ANY(%(ids)s::bigint[]) "
            "AND NOT EXISTS "
            "(SELECT 1 FROM wallets_account a WHERE a.user_id = c.user_id "
            "AND a.kind = %(in_payout)s OFFSET 0) ON CONFLICT DO NOTHING",
            {
                "in_payout": AccountKind.DIAMONDS_IN_PAYOUT.value,
                "unit": UNIT_OF_KIND[AccountKind.DIAMONDS_IN_PAYOUT].value,
                "now": now,
                "ids": ids_array,
            },
        )
        # Two index reads by id lists (a join here lets the planner hash every account).
        cursor.execute(
            "SELECT user_id, id FROM creators_creator WHERE id = ANY(%s::bigint[])", [ids_array]
        )
        creator_of_user = dict(cursor.fetchall())
        cursor.execute(
            "SELECT user_id, id, kind FROM wallets_account "
            "WHERE user_id = ANY(%s::bigint[]) AND kind IN (%s, %s)",
            [
                int_array(creator_of_user),
                AccountKind.DIAMONDS_AVAILABLE.value,
                AccountKind.DIAMONDS_IN_PAYOUT.value,
            ],
        )
        accounts: dict[int, dict[str, int]] = {}
        for user_id, account_id, kind in cursor.fetchall():
            accounts.setdefault(creator_of_user[user_id], {})[kind] = account_id
        locked = accounts_lock(account_ids=[a for pair in accounts.values() for a in pair.values()])
        approval_above = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
        tax_threshold = settings.PAYOUT_TAX_FORM_THRESHOLD
        cursor.execute(
            """
            WITH due AS (
                SELECT c.id AS creator_id, a.balance AS diamonds, m.rail,
                       CASE WHEN m.rail = %(stripe)s THEN m.stripe_account_id ELSE m.iban END
                           AS destination,
                       m.tax_form_status,
                       trunc(a.balance * %(value)s::numeric, 2) AS amount
                FROM creators_creator c
                JOIN payouts_payoutmethod m ON m.creator_id = c.id AND m.is_verified
                JOIN wallets_account a ON a.user_id = c.user_id AND a.kind = %(available)s
                WHERE c.id = ANY(%(ids)s::bigint[]) AND a.id = ANY(%(locked)s::bigint[])
                  AND c.is_active
                  AND a.balance >= %(minimum)s
                  AND NOT EXISTS (
                      SELECT 1 FROM payouts_payout p
                      WHERE p.creator_id = c.id AND p.status = ANY(%(open)s)
                  )
            ),
            held AS (
                SELECT due.*,
                       concat_ws('; ',
                           CASE WHEN due.amount > %(approval)s THEN %(approval_reason)s END,
                           CASE WHEN due.tax_form_status = %(missing)s
                                 AND COALESCE(y.total, 0) + due.amount > %(tax)s
                                THEN %(tax_reason)s END
                       ) AS hold_reason
                FROM due
                -- Per creator (its index): a grouped read of this year's payouts filtered by
                -- the chunk's ids scanned every payout of the year, a little more each chunk.
                LEFT JOIN LATERAL (
                    SELECT SUM(p.amount) AS total FROM payouts_payout p
                    WHERE p.creator_id = due.creator_id AND p.created_at >= %(year_start)s
                      AND p.status = ANY(%(counted)s)
                ) y ON true
            )
            INSERT INTO payouts_payout (
                creator_id, batch_id, diamonds, amount, amount_currency, status, rail,
                destination, hold_reason, rail_reference, failure_code, failure_reason,
                attempts, created_at, updated_at, diamond_value, is_instant, fee, fee_currency
            )
            SELECT creator_id, %(batch)s, diamonds, amount, %(currency)s,
                   CASE WHEN hold_reason = '' THEN %(requested)s ELSE %(awaiting)s END,
                   rail, destination, left(hold_reason, 200), '', '', '',
                   0, %(now)s, %(now)s, %(value)s, false, 0, %(currency)s
            FROM held
            ORDER BY creator_id
            RETURNING id, creator_id, diamonds, amount, status, hold_reason
            """,
            {
                "stripe": Rail.STRIPE.value,
                "value": settings.DIAMOND_VALUE,
                "available": AccountKind.DIAMONDS_AVAILABLE.value,
                "ids": ids_array,
                "locked": int_array(locked),
                "minimum": minimum,
                "open": _in(OPEN_STATUSES),
                "approval": approval_above.amount,
                "approval_reason": f"above the approval threshold of {approval_above}",
                "missing": TaxFormStatus.MISSING.value,
                "tax": tax_threshold,
                "tax_reason": (
                    f"tax form needed (over {tax_threshold} {settings.PAYOUT_CURRENCY} this year)"
                ),
                "year_start": year_start,
                "counted": _in([PayoutStatus.PAID, *OPEN_STATUSES]),
                "batch": batch.pk,
                "currency": settings.PAYOUT_CURRENCY,
                "requested": PayoutStatus.REQUESTED.value,
                "awaiting": PayoutStatus.AWAITING_APPROVAL.value,
                "now": now,
            },
        )
        created = cursor.fetchall()
        if not created:
            return []
        payout_ids = [row[0] for row in created]
        cursor.execute(
            "INSERT INTO payouts_payoutevent (payout_id, from_status, to_status, actor_id, note, "
            "created_at) SELECT id, '', status, %s, left(hold_reason, 500), %s "
            "FROM payouts_payout WHERE id = ANY(%s::bigint[])",
            [actor_id, now, int_array(payout_ids)],
        )
    currency = settings.PAYOUT_CURRENCY  # once, not a lazy settings lookup per payout
    ledger_move_bulk(
        kind=TransactionKind.PAYOUT_CREATED,
        moves=[
            Move(
                idempotency_key=f"payout-created:{payout_id}",
                debit=accounts[creator_id][AccountKind.DIAMONDS_AVAILABLE],
                credit=accounts[creator_id][AccountKind.DIAMONDS_IN_PAYOUT],
                amount=diamonds,
                memo=f"Payout #{payout_id} ({_money_label(amount, currency)})",
                reference=f"payout:{payout_id}",
            )
            for payout_id, creator_id, diamonds, amount, _status, _hold in created
        ],
        actor_id=actor_id,
        now=now,
    )
    statement_allocate_bulk(payout_ids=payout_ids)
    return [(row[0], row[2], row[4]) for row in created]


# The FIFO allocation of ``payouts.statements.statement_allocate``, for many payouts in one
# statement. Per payout: the creator's source entries (pending and available, not internal
# moves) since the allocation cursor minus the margin, less what non-void lines already took;
# every negative remainder made before the payout, whole; then positives oldest first until the
# lines reach the payout's diamonds (the last one possibly in part). Positions follow (created
# at, id), like the per-payout version. Sums are cast back to bigint: PostgreSQL's SUM(bigint) is
# numeric, and numeric arithmetic in the window functions over ~100,000 rows a chunk is slow.
STATEMENT_SQL = """
-- The allocation cursor of each of the chunk's creators: the last allocated source entry in a
-- payout of theirs that stands. Read once per chunk for the whole id list, not probed once per
-- payout: planned on statistics taken while the payouts table was still empty (a first batch,
-- before autovacuum catches up), a per-payout probe became a walk of the payouts' primary key
-- for every payout, and one chunk ran for minutes (3 workers, 2026-11-30). Read once, a bad
-- plan costs one pass over the table.
WITH last AS MATERIALIZED (
    SELECT q.creator_id, MAX(l.occurred_at) AS at
    FROM payouts_payout q JOIN payouts_payoutstatementline l ON l.payout_id = q.id
    WHERE q.creator_id = ANY(%(creators)s::bigint[]) AND NOT (q.id = ANY(%(ids)s::bigint[]))
      AND q.status <> ALL(%(void)s) AND l.diamonds > 0
    GROUP BY q.creator_id
),
p AS MATERIALIZED (
    SELECT p.id AS payout_id, p.creator_id, p.diamonds, p.created_at AS payout_at, c.user_id,
           COALESCE(last.at - %(margin)s::interval, '-infinity') AS since
    FROM payouts_payout p JOIN creators_creator c ON c.id = p.creator_id
    LEFT JOIN last ON last.creator_id = p.creator_id
    WHERE p.id = ANY(%(ids)s::bigint[]) AND c.id = ANY(%(creators)s::bigint[])
),
-- From each payout, index probes only (each LATERAL ... OFFSET 0 is a nested loop whatever the
-- estimates): its creator's source accounts, their entries since the cursor, each entry's
-- journal row and what earlier lines already took of it. Left to the planner, the joins of a
-- chunk's ~115,000 entries turned into hash and merge joins over whole tables (every journal
-- row, every statement line, the entries index from its start) once the statistics moved
-- during a batch: 10-40 s per chunk at 100,000 creators (BENCHMARKS.md).
src AS (
    SELECT p.payout_id, p.diamonds, p.payout_at, e.id AS entry_id, e.transaction_id,
           t.kind AS tx_kind, e.amount, e.created_at,
           e.amount - COALESCE(taken.total, 0) AS remaining
    FROM p
    JOIN LATERAL (
        SELECT a.id FROM wallets_account a
        WHERE a.user_id = p.user_id AND a.kind = ANY(%(source_kinds)s) OFFSET 0
    ) a ON true
    JOIN LATERAL (
        SELECT e.id, e.transaction_id, e.amount, e.created_at FROM wallets_entry e
        WHERE e.account_id = a.id AND e.created_at >= p.since OFFSET 0
    ) e ON true
    JOIN LATERAL (
        SELECT t.kind FROM wallets_ledgertransaction t
        WHERE t.id = e.transaction_id AND t.kind <> ALL(%(not_sources)s) OFFSET 0
    ) t ON true
    -- Only for a creator with an earlier allocation (a standing payout's lines include a
    -- positive one, so with no cursor there are none): on a first batch the lines table is
    -- empty when the first chunks are planned, and a probe planned on it scanned the lines the
    -- other chunk was writing, once per entry (122 s for one chunk).
    LEFT JOIN LATERAL (
        SELECT SUM(l.diamonds)::bigint AS total
        FROM payouts_payoutstatementline l JOIN payouts_payout q ON q.id = l.payout_id
        WHERE p.since > '-infinity' AND l.entry_id = e.id AND q.creator_id = p.creator_id
          AND NOT (q.id = ANY(%(ids)s::bigint[])) AND q.status <> ALL(%(void)s)
          AND l.occurred_at >= p.since
        OFFSET 0
    ) taken ON true
),
kept AS (
    SELECT src.*,
           src.diamonds - COALESCE(SUM(remaining) FILTER (WHERE remaining < 0)
                                   OVER (PARTITION BY payout_id), 0)::bigint AS need,
           COALESCE(SUM(GREATEST(remaining, 0)) OVER (
               PARTITION BY payout_id ORDER BY created_at, entry_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS before
    FROM src
    WHERE remaining <> 0 AND (remaining > 0 OR created_at <= payout_at)
),
lines AS (
    SELECT kept.*,
           CASE WHEN remaining < 0 THEN remaining
                WHEN need - before > 0 THEN LEAST(remaining, need - before)
           END AS take
    FROM kept
)
INSERT INTO payouts_payoutstatementline
    (payout_id, position, kind, entry_id, transaction_id, diamonds, entry_diamonds, occurred_at)
SELECT payout_id,
       ROW_NUMBER() OVER (PARTITION BY payout_id ORDER BY created_at, entry_id),
       CASE tx_kind WHEN %(gift)s THEN %(line_gift)s
                    WHEN %(membership)s THEN %(line_membership)s
                    WHEN %(clawback)s THEN %(line_chargeback)s
                    WHEN %(reversal)s THEN %(line_reversal)s
                    ELSE %(line_adjustment)s END,
       entry_id, transaction_id, take, amount, created_at
FROM lines
WHERE take IS NOT NULL
"""


def statement_allocate_bulk(*, payout_ids: list[int]) -> int:
    """Write the statement lines of ``payout_ids`` (just created, none allocated yet) at once.

    Equal, line for line, to ``statement_allocate`` run on each payout in id order, provided no
    two of them belong to one creator (one open payout per creator guarantees it).
    """
    from payouts.models import StatementLineKind
    from payouts.statements import LINE_KIND

    if not payout_ids:
        return 0
    with connection.cursor() as cursor:
        # The chunk's creators first, by index (the statement starts from id lists).
        ids_array = int_array(payout_ids)
        cursor.execute(
            "SELECT creator_id FROM payouts_payout WHERE id = ANY(%s::bigint[])", [ids_array]
        )
        creator_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            STATEMENT_SQL,
            {
                "ids": ids_array,
                "creators": int_array(creator_ids),
                "source_kinds": _in([AccountKind.DIAMONDS_PENDING, AccountKind.DIAMONDS_AVAILABLE]),
                "void": _in(VOID_STATUSES),
                "margin": f"{int(LATE_COMMIT_MARGIN.total_seconds())} seconds",
                "not_sources": _in(NOT_SOURCES),
                "gift": TransactionKind.GIFT.value,
                "clawback": TransactionKind.CLAWBACK.value,
                "reversal": TransactionKind.REVERSAL.value,
                "line_gift": LINE_KIND[TransactionKind.GIFT].value,
                "membership": TransactionKind.MEMBERSHIP.value,
                "line_membership": LINE_KIND[TransactionKind.MEMBERSHIP].value,
                "line_chargeback": LINE_KIND[TransactionKind.CLAWBACK].value,
                "line_reversal": LINE_KIND[TransactionKind.REVERSAL].value,
                "line_adjustment": StatementLineKind.ADJUSTMENT.value,
            },
        )
        written: int = cursor.rowcount
        return written


AWAITING = PayoutStatus.AWAITING_APPROVAL


def _notify_held(payout_ids: list[int]) -> None:
    from payouts.notices import payout_notify

    for payout in Payout.objects.filter(pk__in=payout_ids).select_related("creator__user"):
        payout_notify(payout=payout)


def batch_chunks(
    *,
    batch: PayoutBatch,
    actor_id: int | None,
    minimum: int,
    on_chunk: Callable[[list[int]], None],
) -> tuple[list[int], list[int], int, int]:
    """Run every chunk; ``on_chunk(chunk payout ids due for sending)`` after each commit.

    Returns (created ids, awaiting-approval ids, diamonds, chunks that fell back to the
    per-creator path).
    """
    from payouts.services import create_payouts_one_by_one

    size = settings.PAYOUT_BATCH_CHUNK

    def one_chunk(ids: list[int]) -> tuple[list[tuple[int, int, str]], bool]:
        try:
            with transaction.atomic():
                rows = chunk_create(
                    batch=batch, creator_ids=ids, actor_id=actor_id, minimum=minimum
                )
                # The "on hold" emails, in the chunk's transaction (held payouts are few).
                _notify_held([pid for pid, _d, status in rows if status == AWAITING])
            return rows, False
        except DatabaseError as exc:
            # A concurrent single payout (or a lock timeout) broke the chunk: the rare case
            # goes through the per-creator service, which skips only that creator.
            log.warning("payout chunk from creator %s fell back to one by one: %s", ids[0], exc)
            return create_payouts_one_by_one(batch=batch, creator_ids=ids, actor_id=actor_id), True

    created: list[int] = []
    awaiting: list[int] = []
    diamonds = 0
    fallbacks = 0
    for _ids, (rows, fell_back) in chunks_in_parallel(
        next_chunk=chunks_of_due(size=size),
        work=one_chunk,
        workers=settings.PAYOUT_BATCH_WORKERS,
    ):
        fallbacks += fell_back
        for payout_id, payout_diamonds, status in rows:
            created.append(payout_id)
            diamonds += payout_diamonds
            if status == PayoutStatus.AWAITING_APPROVAL:
                awaiting.append(payout_id)
        on_chunk([pid for pid, _d, status in rows if status == PayoutStatus.REQUESTED])
    return created, awaiting, diamonds, fallbacks
