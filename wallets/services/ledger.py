"""Everything that writes the ledger. Other apps move money only through these functions."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.audit import audit_record
from accounts.client_address import ClientRequest
from config.errors import DomainError, InsufficientFunds, InvalidInput, WalletFrozen
from config.keyset import keyset
from wallets.models import (
    HOT_KINDS,
    NON_NEGATIVE_KINDS,
    NON_POSITIVE_KINDS,
    UNIT_OF_KIND,
    USER_KINDS,
    Account,
    AccountKind,
    Entry,
    LedgerTransaction,
    TransactionKind,
)

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)


class LedgerImbalance(DomainError):
    code = "ledger_imbalance"
    status = 500
    default_message = "A transaction's entries must sum to zero per unit."


@dataclass(frozen=True)
class Posting:
    account: Account
    amount: int


@dataclass(frozen=True)
class PostResult:
    transaction: LedgerTransaction
    created: bool
    balances: dict[int, int]  # account id -> balance_after, for cold accounts


# --- Accounts -------------------------------------------------------------------------------


def account_get(*, kind: str, user: User | None = None) -> Account:
    """The account of ``kind`` for ``user`` (or the platform's), created on first use."""
    if (kind in USER_KINDS) != (user is not None):
        raise ValueError(f"{kind} accounts {'need' if kind in USER_KINDS else 'take no'} owner")
    lookup = {"kind": kind, "user": user}
    account = Account.objects.filter(**lookup).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(
                unit=UNIT_OF_KIND[AccountKind(kind)], is_hot=kind in HOT_KINDS, **lookup
            )
    except IntegrityError:
        return Account.objects.get(**lookup)


def wallet_get(*, user: User) -> Account:
    return account_get(kind=AccountKind.WALLET, user=user)


def platform_account(kind: str) -> Account:
    return account_get(kind=kind)


# --- Posting --------------------------------------------------------------------------------


def _apply_cold(account: Account, delta: int) -> int | None:
    """Move a row-locked balance with one conditional statement; None when the rule refuses."""
    condition = ""
    if account.kind in NON_NEGATIVE_KINDS:
        condition = " AND balance + %s >= 0"
    elif account.kind in NON_POSITIVE_KINDS:
        condition = " AND balance + %s <= 0"
    params: list[int] = [delta, account.pk] + ([delta] if condition else [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE wallets_account SET balance = balance + %s WHERE id = %s{condition} "  # noqa: S608 (condition is one of two constants)
            "RETURNING balance",
            params,
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _hot_debit_check(account: Account, delta: int) -> None:
    """A debit from a hot account locks its row, so debits (and rollups) queue one by one.

    Credits never take this lock, so concurrent gifts can only raise the balance we check.
    """
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if locked.kind in NON_NEGATIVE_KINDS and account_balance(locked) + delta < 0:
        raise InsufficientFunds(f"Not enough {locked.unit.lower()}s in {locked.kind}.")


def ledger_post(
    *,
    kind: str,
    idempotency_key: str,
    postings: Iterable[Posting],
    actor: User | None = None,
    memo: str = "",
    reference: str = "",
    reverses: LedgerTransaction | None = None,
) -> PostResult:
    """Post one balanced transaction exactly once per ``idempotency_key``.

    Must run inside ``transaction.atomic``. If the key was already applied the existing
    transaction is returned with ``created=False`` and nothing is written. Cold accounts are
    updated in account-id order (no deadlocks) with conditional updates; hot accounts only get
    entries appended.
    """
    postings = [p for p in postings if p.amount != 0]
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.account.unit] += posting.amount
    if any(totals.values()) or not postings:
        raise LedgerImbalance(f"Unbalanced {kind} transaction: {dict(totals)}")

    journal = LedgerTransaction(
        kind=kind,
        idempotency_key=idempotency_key,
        actor=actor,
        memo=memo[:500],
        reference=reference[:100],
        reverses=reverses,
    )
    # Claim the key with ON CONFLICT DO NOTHING rather than a savepoint around a plain insert
    # (two round trips fewer per posting). A concurrent claim of the same key waits for the
    # other transaction: committed, we get no row and return its transaction; rolled back,
    # the key is ours.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_ledgertransaction "
            "(kind, idempotency_key, actor_id, memo, reference, reverses_id, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            [
                journal.kind,
                journal.idempotency_key,
                journal.actor_id,
                journal.memo,
                journal.reference,
                journal.reverses_id,
                journal.created_at,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        existing = LedgerTransaction.objects.get(idempotency_key=idempotency_key)
        return PostResult(existing, False, {})
    journal.pk = row[0]
    journal._state.adding = False
    journal._state.db = connection.alias

    merged: dict[int, int] = defaultdict(int)
    accounts: dict[int, Account] = {}
    for posting in postings:
        merged[posting.account.pk] += posting.amount
        accounts[posting.account.pk] = posting.account

    balances: dict[int, int] = {}
    for account_id in sorted(merged):
        account, delta = accounts[account_id], merged[account_id]
        if delta == 0:
            continue
        if account.is_hot:
            if delta < 0 and account.kind in NON_NEGATIVE_KINDS:
                _hot_debit_check(account, delta)
            continue
        new_balance = _apply_cold(account, delta)
        if new_balance is None:
            if not Account.objects.filter(pk=account_id).exists():
                raise InvalidInput("Unknown account.")
            if account.kind == AccountKind.WALLET:
                raise InsufficientFunds()
            raise InsufficientFunds(f"Not enough {account.unit.lower()}s in {account.kind}.")
        balances[account_id] = new_balance

    now = journal.created_at
    Entry.objects.bulk_create(
        [
            Entry(
                transaction=journal,
                account_id=account_id,
                amount=delta,
                balance_after=balances.get(account_id),
                created_at=now,
            )
            for account_id, delta in sorted(merged.items())
            if delta != 0
        ]
    )
    return PostResult(journal, True, balances)


# --- Balances of hot accounts ---------------------------------------------------------------


def account_balance(account: Account) -> int:
    """The live balance. Cold: the row. Hot: the checkpoint plus the entries after it."""
    if not account.is_hot:
        return account.balance
    entries = Entry.objects.filter(account_id=account.pk)
    if account.checkpoint_at is not None:
        entries = entries.filter(created_at__gte=account.checkpoint_at)
    return account.balance + (entries.aggregate(total=Sum("amount"))["total"] or 0)


@transaction.atomic
def account_rollup(*, account_id: int) -> Account:
    """Fold a hot account's settled entries into its checkpoint.

    Only entries older than ``LEDGER_ROLLUP_LAG_SECONDS`` are folded: an open transaction may
    still commit an entry stamped a moment ago, never one stamped minutes ago.
    """
    account = Account.objects.select_for_update().get(pk=account_id)
    if not account.is_hot:
        return account
    new_checkpoint = timezone.now() - timedelta(seconds=settings.LEDGER_ROLLUP_LAG_SECONDS)
    if account.checkpoint_at is not None and new_checkpoint <= account.checkpoint_at:
        return account
    entries = Entry.objects.filter(account_id=account_id, created_at__lt=new_checkpoint)
    if account.checkpoint_at is not None:
        entries = entries.filter(created_at__gte=account.checkpoint_at)
    delta = entries.aggregate(total=Sum("amount"))["total"] or 0
    Account.objects.filter(pk=account_id).update(
        balance=F("balance") + delta, checkpoint_at=new_checkpoint
    )
    account.refresh_from_db()
    return account


ROLLUP_PAGE = 1000


def hot_accounts_rollup() -> int:
    """Roll up every hot account that has entries since its checkpoint. Safe to run twice."""
    count = 0
    # One per creator (their pending diamonds) besides the platform's: read in keyset pages
    # (a server-side cursor held across the rollups' transactions does not survive
    # PgBouncer's transaction pooling, #23).
    hot = Account.objects.filter(is_hot=True).values_list("pk", flat=True)
    for account_id in keyset(hot, size=ROLLUP_PAGE, key=lambda pk: (pk,)):
        account_rollup(account_id=account_id)
        count += 1
    return count


# --- Wallet operations ----------------------------------------------------------------------


def wallet_frozen_error(reason: str) -> WalletFrozen:
    return WalletFrozen("This wallet is frozen" + (f": {reason}." if reason else "."))


def _ensure_not_frozen(wallet: Account) -> None:
    if wallet.is_frozen:
        raise wallet_frozen_error(wallet.frozen_reason)


@transaction.atomic
def wallet_adjust(
    *,
    user: User,
    coins: int,
    reason: str,
    actor: User | None,
    idempotency_key: str | None = None,
    request: ClientRequest | None = None,
) -> LedgerTransaction:
    """A staff credit (coins > 0) or debit (coins < 0) against the adjustments account.

    A debit never takes the wallet below zero. The reason is mandatory and stored as the memo.
    Audited (``wallet_credit`` / ``wallet_debit``) in the same transaction; a repeated key
    posts and audits nothing.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    if not isinstance(coins, int) or isinstance(coins, bool) or coins == 0:
        raise InvalidInput(
            "Coins must be a non-zero whole number.", fields={"coins": ["Must be non-zero."]}
        )
    if abs(coins) > 10**12:
        raise InvalidInput("That amount is too large.", fields={"coins": ["Too large."]})
    wallet = wallet_get(user=user)
    before = {"balance": wallet.balance}
    adjustments = platform_account(AccountKind.ADJUSTMENTS)
    key = idempotency_key or f"adjustment:{user.pk}:{timezone.now().isoformat()}:{coins}"
    result = ledger_post(
        kind=TransactionKind.GRANT if coins > 0 else TransactionKind.ADJUSTMENT,
        idempotency_key=key,
        postings=[Posting(wallet, coins), Posting(adjustments, -coins)],
        actor=actor,
        memo=reason,
        reference=f"user:{user.pk}",
    )
    if result.created:
        wallet.refresh_from_db()
        audit_record(
            actor=actor,
            action="wallet_credit" if coins > 0 else "wallet_debit",
            obj=wallet,
            before=before,
            after={"balance": wallet.balance, "coins": coins, "transaction": result.transaction.pk},
            reason=reason,
            request=request,
        )
    return result.transaction


# A freeze with this prefix is a transaction ban: for fraud and abuse, and only finance lifts it.
TRANSACTION_BAN_PREFIX = "Transaction ban: "


def _wallet_state(wallet: Account) -> dict[str, Any]:
    return {
        "balance": wallet.balance,
        "is_frozen": wallet.is_frozen,
        "reason": wallet.frozen_reason,
    }


@transaction.atomic
def wallet_freeze(
    *,
    user: User,
    reason: str,
    actor: User | None = None,
    ban: bool = False,
    request: ClientRequest | None = None,
) -> Account:
    """Freeze a wallet (no spending); ``ban``: a transaction ban. Audited (``wallet_freeze`` /
    ``wallet_ban``) in the same transaction. Who may do it is the caller's check."""
    wallet = Account.objects.select_for_update().get(pk=wallet_get(user=user).pk)
    before = _wallet_state(wallet)
    stored = (TRANSACTION_BAN_PREFIX + reason) if ban else reason
    Account.objects.filter(pk=wallet.pk).update(is_frozen=True, frozen_reason=stored[:255])
    wallet.refresh_from_db()
    audit_record(
        actor=actor,
        action="wallet_ban" if ban else "wallet_freeze",
        obj=wallet,
        before=before,
        after=_wallet_state(wallet),
        reason=reason,
        request=request,
    )
    return wallet


@transaction.atomic
def wallet_unfreeze(
    *, user: User, actor: User | None = None, reason: str = "", request: ClientRequest | None = None
) -> Account:
    """Lift a freeze (or a ban: only finance may, the caller checks). Audited
    (``wallet_unfreeze``) in the same transaction."""
    wallet = Account.objects.select_for_update().get(pk=wallet_get(user=user).pk)
    before = _wallet_state(wallet)
    Account.objects.filter(pk=wallet.pk).update(is_frozen=False, frozen_reason="")
    wallet.refresh_from_db()
    audit_record(
        actor=actor,
        action="wallet_unfreeze",
        obj=wallet,
        before=before,
        after=_wallet_state(wallet),
        reason=reason,
        request=request,
    )
    return wallet


def wallet_check_can_spend(*, wallet: Account) -> None:
    _ensure_not_frozen(wallet)
