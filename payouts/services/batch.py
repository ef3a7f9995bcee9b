"""The payout batch: one payout per due creator (set-based chunks on PostgreSQL, one by one
elsewhere), then every due payout is queued for its rail."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import audit_record
from config.errors import InsufficientFunds
from config.keyset import keyset
from creators.models import Creator
from payouts.bulk import batch_chunks
from payouts.models import (
    OPEN_STATUSES,
    Payout,
    PayoutBatch,
    PayoutEvent,
    PayoutMethod,
    PayoutStatus,
    Rail,
    TaxFormStatus,
)
from payouts.notices import payout_notify
from payouts.services.transitions import (
    _accounts,
    _enqueue_send,
    diamonds_value,
    minimum_payout_diamonds,
)
from payouts.statements import statement_allocate
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import Posting, account_get, advisory_lock, ledger_post
from wallets.services.bulk import bulk_supported

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)


def payout_candidates() -> list[tuple[int, int, int]]:
    """(creator id, user id, diamonds available) of every creator due a payout, in one query.

    A join against the ledger's cold ``diamonds_available`` rows (their balance column is the
    live balance): verified method, at least the minimum, and no payout already open.
    """
    open_placeholders = ", ".join(["%s"] * len(OPEN_STATUSES))
    sql = f"""
        SELECT c.id, c.user_id, a.balance
        FROM {Creator._meta.db_table} c
        JOIN {PayoutMethod._meta.db_table} m ON m.creator_id = c.id AND m.is_verified
        JOIN {Account._meta.db_table} a ON a.user_id = c.user_id AND a.kind = %s
        WHERE c.is_active AND a.balance >= %s
          AND NOT EXISTS (
              SELECT 1 FROM {Payout._meta.db_table} p
              WHERE p.creator_id = c.id AND p.status IN ({open_placeholders})
          )
        ORDER BY c.id
    """  # noqa: S608 (table names from the models; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                AccountKind.DIAMONDS_AVAILABLE.value,
                minimum_payout_diamonds(),
                *[str(s) for s in OPEN_STATUSES],
            ],
        )
        return [(int(c), int(u), int(b)) for c, u, b in cursor.fetchall()]


def _paid_this_year(creator_ids: list[int]) -> dict[int, Decimal]:
    start = timezone.now().replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = (
        Payout.objects.filter(
            creator_id__in=creator_ids,
            created_at__gte=start,
            status__in=[PayoutStatus.PAID, *OPEN_STATUSES],
        )
        .values("creator_id")
        .annotate(total=Sum("amount"))
    )
    return {row["creator_id"]: row["total"] or Decimal(0) for row in rows}


@dataclass
class BatchResult:
    batch: PayoutBatch | None
    created: list[int] = field(default_factory=list)
    awaiting_approval: list[int] = field(default_factory=list)
    skipped: int = 0
    resent: int = 0
    fallbacks: int = 0  # set-based chunks that went one by one (a conflict in the chunk)

    @property
    def summary(self) -> str:
        if self.batch is None:
            return "run_payouts: another batch is running; nothing done"
        return (
            f"run_payouts: batch #{self.batch.pk}: {len(self.created)} payouts created "
            f"({self.batch.diamonds} diamonds), {len(self.awaiting_approval)} awaiting approval, "
            f"{self.resent} stuck payouts resent, {self.skipped} skipped"
        )


def payout_holds(
    *,
    method: PayoutMethod,
    amount: Money,
    paid_this_year: Decimal,
    approval_above: Money | None = None,
    tax_threshold: Decimal | None = None,
) -> list[str]:
    """Why a new payout must wait for staff (empty: it may go at once). The batch and
    "cash out now" (payouts.instant) both ask this."""
    if approval_above is None:
        approval_above = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
    if tax_threshold is None:
        tax_threshold = settings.PAYOUT_TAX_FORM_THRESHOLD
    holds = []
    if amount > approval_above:
        holds.append(f"above the approval threshold of {approval_above}")
    if (
        method.tax_form_status == TaxFormStatus.MISSING
        and paid_this_year + amount.amount > tax_threshold
    ):
        holds.append(f"tax form needed (over {tax_threshold} {amount.currency} this year)")
    return holds


def payout_batch_run(*, actor: User | None = None, set_based: bool | None = None) -> BatchResult:
    """Create one payout per due creator, then send every payout that is due to its rail.

    Deliberately not one transaction: each creator's payout row and its ledger move
    (available → in payout) commit together on their own, so a crash part-way keeps what was
    done and a rerun continues (the open-payout exclusion and the unique constraint make a
    creator's second payout impossible). Payouts left in requested / processing by a crash are
    sent again with their original idempotency key.
    """
    with advisory_lock("applause:payouts:batch") as acquired:
        if not acquired:
            return BatchResult(batch=None)
        if set_based is None:
            set_based = bulk_supported()
        return _batch_run(actor=actor, set_based=set_based)


def _batch_run(*, actor: User | None, set_based: bool) -> BatchResult:
    batch = PayoutBatch.objects.create(actor=actor)
    if actor is not None:
        # A person started this run (not the weekly schedule): on record with the batch row.
        audit_record(actor=actor, action="payout_batch_run", obj=batch)
    result = BatchResult(batch=batch)
    actor_id = actor.pk if actor is not None else None
    minimum = minimum_payout_diamonds()

    def on_chunk(payout_ids: list[int]) -> None:
        with transaction.atomic():
            _enqueue_send(payout_ids)

    if set_based:
        created, awaiting, total_diamonds, result.fallbacks = batch_chunks(
            batch=batch, actor_id=actor_id, minimum=minimum, on_chunk=on_chunk
        )
        result.created, result.awaiting_approval = created, awaiting
    else:
        total_diamonds = 0
        ids = [creator_id for creator_id, _user, _balance in payout_candidates()]
        size = settings.PAYOUT_BATCH_CHUNK
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            rows = create_payouts_one_by_one(batch=batch, creator_ids=chunk, actor_id=actor_id)
            result.skipped += len(chunk) - len(rows)
            for payout_id, diamonds, status in rows:
                result.created.append(payout_id)
                total_diamonds += diamonds
                if status == PayoutStatus.AWAITING_APPROVAL:
                    result.awaiting_approval.append(payout_id)
            on_chunk([pid for pid, _d, status in rows if status == PayoutStatus.REQUESTED])

    # Left by an earlier run (a crash, a lost worker): sent again with their original keys.
    # Read in keyset pages, not through .iterator()'s server-side cursor (PgBouncer, #23).
    created_now = set(result.created)
    stuck = [
        pk
        for pk in keyset(
            Payout.objects.filter(
                Q(status=PayoutStatus.REQUESTED)
                | Q(status=PayoutStatus.PROCESSING, rail=Rail.STRIPE)
            ).values_list("pk", flat=True),
            size=10000,
            key=lambda pk: (pk,),
        )
        if pk not in created_now
    ]
    result.resent = len(stuck)
    PayoutBatch.objects.filter(pk=batch.pk).update(
        finished_at=timezone.now(),
        payouts_created=len(result.created),
        diamonds=total_diamonds,
        payouts_resent=result.resent,
    )
    batch.refresh_from_db()
    on_chunk(stuck)
    return result


def create_payouts_one_by_one(
    *, batch: PayoutBatch, creator_ids: list[int], actor_id: int | None
) -> list[tuple[int, int, str]]:
    """The per-creator path (SQLite, and a set-based chunk's fallback): one transaction per
    creator through ``ledger_post`` and ``statement_allocate``. Returns ``(payout id, diamonds,
    status)`` of each payout created; a creator no longer due is skipped."""
    minimum = minimum_payout_diamonds()
    methods = {m.creator_id: m for m in PayoutMethod.objects.filter(creator_id__in=creator_ids)}
    yearly = _paid_this_year(creator_ids)
    creators = Creator.objects.select_related("user").in_bulk(creator_ids)
    approval_above = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
    tax_threshold = settings.PAYOUT_TAX_FORM_THRESHOLD
    rows: list[tuple[int, int, str]] = []
    for creator_id in creator_ids:
        method = methods.get(creator_id)
        creator = creators.get(creator_id)
        if method is None or not method.is_verified or creator is None or not creator.is_active:
            continue
        diamonds = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user).balance
        if diamonds < minimum:
            continue
        amount = diamonds_value(diamonds)
        holds = payout_holds(
            method=method,
            amount=amount,
            paid_this_year=yearly.get(creator_id, Decimal(0)),
            approval_above=approval_above,
            tax_threshold=tax_threshold,
        )
        status = PayoutStatus.AWAITING_APPROVAL if holds else PayoutStatus.REQUESTED
        destination = method.stripe_account_id if method.rail == Rail.STRIPE else method.iban
        try:
            with transaction.atomic():
                payout = Payout.objects.create(  # type: ignore[misc]  # djmoney: MoneyField takes Money
                    creator=creator,
                    batch=batch,
                    diamonds=diamonds,
                    amount=amount,
                    status=status,
                    rail=method.rail,
                    destination=destination,
                    hold_reason="; ".join(holds)[:200],
                    diamond_value=settings.DIAMOND_VALUE,
                    fee=Money(0, settings.PAYOUT_CURRENCY),
                )
                PayoutEvent.objects.create(
                    payout=payout, to_status=status, actor_id=actor_id, note=payout.hold_reason
                )
                available, in_payout = _accounts(payout)
                ledger_post(
                    kind=TransactionKind.PAYOUT_CREATED,
                    idempotency_key=f"payout-created:{payout.pk}",
                    postings=[Posting(available, -diamonds), Posting(in_payout, diamonds)],
                    actor=batch.actor,
                    memo=f"Payout #{payout.pk} ({amount})",
                    reference=f"payout:{payout.pk}",
                )
                # Which gifts this payout pays (its statement), in the same transaction.
                statement_allocate(payout=payout)
                payout_notify(payout=payout)
        except (IntegrityError, InsufficientFunds) as exc:
            # A concurrent run opened a payout first, or the balance moved since the read.
            log.warning("payout for creator %s skipped: %s", creator_id, exc)
            continue
        rows.append((payout.pk, diamonds, status))
    return rows
