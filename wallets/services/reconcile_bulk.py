"""Reconciliation's set-based credit: a page of lost payments credited in one transaction.

``payments_reconcile`` reads a page of Stripe's PaymentIntents against our recharges and
ledger keys once (``page_read``), skips what agrees, and hands the succeeded payments whose
recharge is still open to ``recharges_credit_page``. It credits the plain ones (amount,
currency and metadata match; the wallet exists, is not frozen and owes no coin debt) in ONE
transaction: the recharges locked in id order and flipped to succeeded, the journal rows
(``ON CONFLICT (idempotency_key) DO NOTHING``), the wallet balances and the entries through
``ledger_post_bulk``; the receipts are written after the commit, by one task per page
(``recharge_receipts_write``, ``email_enqueue_many``), and any a crash lost by the next run. It returns the rest (a
mismatch, a frozen wallet, a debt to settle first, a wallet not made yet) for the per-item
``recharge_apply_success``, which records discrepancies and settles debts as it always has.

Exactly once beside the webhook: both flip the recharge with a status condition under its row
lock. Whichever commits first wins; the other, re-reading the row after the lock, finds it
succeeded and credits nothing (and the ledger key refuses a second credit besides). Lock
order is the per-item one: the recharge rows, then the accounts in id order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone, translation
from djmoney.money import Money

from notifications.models import OutboxEmail
from wallets import stripe_gateway as gateway
from wallets.models import (
    CREDITED_STATUSES,
    Account,
    AccountKind,
    LedgerTransaction,
    Recharge,
    RechargeStatus,
    TransactionKind,
)
from wallets.services.bulk import BulkTransaction, ledger_post_bulk
from wallets.services.ledger import platform_account
from wallets.services.recharges import _intent_problem, receipt_mail

log = logging.getLogger(__name__)

# Statuses of a recharge a succeeded payment still has to credit.
OPEN_STATUSES = (RechargeStatus.CREATING, RechargeStatus.PENDING, RechargeStatus.FAILED)


@dataclass
class PageRecords:
    """What our database says about one page of PaymentIntents (two queries)."""

    recharges: dict[str, Recharge] = field(default_factory=dict)  # by payment intent id
    credited_keys: set[str] = field(default_factory=set)  # ledger keys already posted


def page_read(payment_intent_ids: Iterable[str]) -> PageRecords:
    ids = list(payment_intent_ids)
    recharges = {
        r.payment_intent: r
        for r in Recharge.objects.filter(payment_intent__in=ids).only(
            "id",
            "user_id",
            "coins",
            "price",
            "price_currency",
            "payment_intent",
            "status",
            "created_at",
        )
        if r.payment_intent
    }
    keys = [r.ledger_key for r in recharges.values()]
    credited = set(
        LedgerTransaction.objects.filter(idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    return PageRecords(recharges=recharges, credited_keys=credited)


def _plain(intent: gateway.PaymentIntent, records: PageRecords) -> Recharge | None:
    """The open recharge ``intent`` pays for with nothing to check by hand, else None."""
    recharge = records.recharges.get(intent.id)
    if recharge is None or intent.status != "succeeded":
        return None
    if recharge.status not in OPEN_STATUSES or _intent_problem(recharge, intent) is not None:
        return None
    return recharge


def _price_text(price: Money) -> str:
    """``str(price)`` (the per-item memo's text), formatted once per amount, currency and
    language: djmoney formats through babel, which costs more than the rest of a credit."""
    return _price_text_cached(price.amount, str(price.currency), translation.get_language())


@functools.lru_cache(maxsize=4096)
def _price_text_cached(amount: Decimal, currency: str, _language: str | None) -> str:
    return str(Money(amount, currency))


def _lock_open(recharge_ids: list[int]) -> set[int]:
    """Lock the recharges still open, in id order; those credited meanwhile (the webhook got
    there first and committed) are left out."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Recharge._meta.db_table} WHERE id = ANY(%s) "  # noqa: S608 (the model's table; values are parameters)
            "AND status = ANY(%s) ORDER BY id FOR UPDATE",
            [sorted(recharge_ids), [str(s) for s in OPEN_STATUSES]],
        )
        return {row[0] for row in cursor.fetchall()}


def _lock_wallets(user_ids: set[int]) -> tuple[dict[int, tuple[int, bool]], set[int]]:
    """Lock the users' wallets and coin-debt accounts in id order (``ledger_post``'s order);
    returns ``{user: (wallet id, frozen)}`` and the users who owe coins."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, user_id, kind, balance, is_frozen FROM {Account._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
            "WHERE user_id = ANY(%s) AND kind = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
            [sorted(user_ids), [str(AccountKind.WALLET), str(AccountKind.COIN_DEBT)]],
        )
        rows = cursor.fetchall()
    wallets = {user: (pk, frozen) for pk, user, kind, _b, frozen in rows if kind == "wallet"}
    owing = {user for _pk, user, kind, balance, _f in rows if kind == "coin_debt" and balance}
    return wallets, owing


def recharges_credit_page(
    *, intents: list[gateway.PaymentIntent], records: PageRecords
) -> tuple[int, list[gateway.PaymentIntent]]:
    """Credit the plain succeeded payments of ``intents`` set-based, in one transaction.

    Returns (how many were credited, the intents left for the per-item path). An intent whose
    recharge another process credited meanwhile is neither credited nor returned.
    """
    plain: dict[int, tuple[gateway.PaymentIntent, Recharge]] = {}
    rest: list[gateway.PaymentIntent] = []
    for intent in intents:
        recharge = _plain(intent, records)
        if recharge is None:
            rest.append(intent)
        else:
            plain[recharge.pk] = (intent, recharge)
    if not plain:
        return 0, rest
    issuance = platform_account(AccountKind.COIN_ISSUANCE)
    with transaction.atomic():
        still_open = _lock_open(list(plain))
        users = {plain[pk][1].user_id for pk in still_open}
        wallets, owing = _lock_wallets(users)
        credit: list[Recharge] = []
        for pk in sorted(still_open):
            intent, recharge = plain[pk]
            wallet = wallets.get(recharge.user_id)
            if wallet is None or wallet[1] or recharge.user_id in owing:
                rest.append(intent)  # made, unfrozen or settled by the per-item path
            else:
                credit.append(recharge)
        if not credit:
            return 0, rest
        now = timezone.now()
        Recharge.objects.filter(pk__in=[r.pk for r in credit]).update(
            status=RechargeStatus.SUCCEEDED, succeeded_at=now, failure_message=""
        )
        ledger_post_bulk(
            kind=TransactionKind.RECHARGE,
            transactions=[
                BulkTransaction(
                    idempotency_key=r.ledger_key,
                    legs=((issuance.pk, -r.coins), (wallets[r.user_id][0], r.coins)),
                    memo=f"Recharge #{r.pk}: {r.coins:,} coins for {_price_text(r.price)}",
                    reference=f"recharge:{r.pk}",
                )
                for r in credit
            ],
            now=now,
        )
        _receipts_after_commit([r.pk for r in credit])
    return len(credit), rest


def _receipts_after_commit(recharge_ids: list[int]) -> None:
    """The page's receipts are rendered and written after its commit, by one task (rendering
    two templates per receipt would cost the page more than its credits). A task lost before
    it ran (a crash, the broker away) is made good by the next run (``receipts_missing``)."""

    def queue() -> None:
        from wallets.tasks import recharge_receipts_task

        try:
            recharge_receipts_task.delay(recharge_ids)
        except Exception:  # the broker is away: the next reconciliation writes them
            log.warning(
                "could not queue %d receipts; the next reconciliation writes them",
                len(recharge_ids),
            )

    transaction.on_commit(queue)


@transaction.atomic
def recharge_receipts_write(*, recharge_ids: list[int]) -> int:
    """Write the receipts of these credited recharges that have none yet (the same mail the
    webhook writes, ``receipt_mail``), set-based. Safe to run twice and beside itself."""
    from notifications.services import email_enqueue_many

    recharges = list(
        Recharge.objects.select_related("user").filter(
            pk__in=recharge_ids, status__in=CREDITED_STATUSES
        )
    )
    return email_enqueue_many(mails=[receipt_mail(r) for r in recharges])


def receipts_missing(*, since: datetime, before: datetime) -> list[int]:
    """Recharges credited from ``since`` until ``before`` (the run's start: its own pages'
    receipts are their tasks' work) whose receipt was never written (a receipts task lost
    after its page committed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id FROM {Recharge._meta.db_table} r WHERE r.status = ANY(%s) "  # noqa: S608 (the models' tables; values are parameters)
            "AND r.succeeded_at >= %s AND r.succeeded_at < %s AND NOT EXISTS (SELECT 1 FROM "
            f"{OutboxEmail._meta.db_table} o WHERE o.user_id = r.user_id "
            "AND o.event = 'recharge_receipt:' || r.id) ORDER BY r.id",
            [[str(s) for s in CREDITED_STATUSES], since, before],
        )
        return [row[0] for row in cursor.fetchall()]
