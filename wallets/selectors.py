from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone
from djmoney.money import Money

from wallets.models import (
    Account,
    AccountKind,
    CoinPackage,
    CoinPackagePrice,
    Entry,
    LedgerTransaction,
    Recharge,
    TransactionKind,
)

if TYPE_CHECKING:
    from accounts.models import User


def wallet_find(*, user: "User") -> Account | None:
    return Account.objects.filter(kind=AccountKind.WALLET, user=user).first()


def wallet_entries(*, user: "User") -> QuerySet[Entry]:
    """The user's own wallet entries with their transaction, newest first."""
    return (
        Entry.objects.filter(account__kind=AccountKind.WALLET, account__user=user)
        .select_related("transaction")
        .order_by("-id")
    )


def coin_packages_on_sale(
    *, currency: str, now: datetime | None = None
) -> list[tuple[CoinPackage, Money, bool]]:
    """Packages on sale with their price in ``currency``, and whether each is the best value
    (most coins per unit of money)."""
    now = now or timezone.now()
    rows = (
        CoinPackagePrice.objects.select_related("package")
        .filter(
            price_currency=currency,
            package__is_active=True,
        )
        .filter(Q(package__available_from__isnull=True) | Q(package__available_from__lte=now))
        .filter(Q(package__available_until__isnull=True) | Q(package__available_until__gt=now))
        .order_by("package__sort_order", "package__coins", "package__id")
    )
    priced = [(row.package, row.price) for row in rows]
    if not priced:
        return []
    best = max(priced, key=lambda item: item[0].total_coins / item[1].amount)[0]
    return [(package, price, package.pk == best.pk) for package, price in priced]


def recharge_for_user(*, user: "User", recharge_id: int | str) -> Recharge | None:
    """The user's own recharge (another user's reads as missing: no IDOR)."""
    return Recharge.objects.filter(pk=recharge_id, user=user).select_related("package").first()


def recharges_of(*, user: "User") -> QuerySet[Recharge]:
    return Recharge.objects.filter(user=user).order_by("-id")


# Journal memos are for staff: a refund's or an adjustment's memo carries the staff member's
# internal reason word for word. What a wallet owner sees is built from the kind and the
# business row instead. Memos the system writes for the owner (a recharge, a gift) are kept.
_OWNER_MEMO_KINDS = {TransactionKind.RECHARGE, TransactionKind.GIFT}
_OWNER_TEXT: dict[str, str] = {
    TransactionKind.REFUND: "Refund of purchase #{ref}",
    TransactionKind.DISPUTE: "Chargeback of purchase #{ref}",
    TransactionKind.DISPUTE_WON: "Dispute of purchase #{ref} settled: coins returned",
    TransactionKind.GRANT: "Coins from Applause",
    TransactionKind.ADJUSTMENT: "Balance correction by Applause support",
    TransactionKind.DEBT_SETTLEMENT: "Coins that settled an earlier balance owed",
    TransactionKind.WRITE_OFF: "Balance owed written off",
    TransactionKind.REVERSAL: "Correction of an earlier entry",
}


def transaction_owner_description(transaction: LedgerTransaction) -> str:
    """The description a wallet's owner sees for one of their entries (never staff notes)."""
    if transaction.kind in _OWNER_MEMO_KINDS:
        return transaction.memo
    template = _OWNER_TEXT.get(transaction.kind)
    prefix, _, ref = transaction.reference.partition(":")
    if template is None or ("{ref}" in template and prefix != "recharge"):
        return transaction.get_kind_display()
    return template.format(ref=ref)


def recharge_balance_after(*, recharge: Recharge) -> int | None:
    """The wallet balance right after this recharge's credit (what its receipt states)."""
    return (
        Entry.objects.filter(
            transaction__kind=TransactionKind.RECHARGE,
            transaction__reference=f"recharge:{recharge.pk}",
            account__kind=AccountKind.WALLET,
        )
        .values_list("balance_after", flat=True)
        .first()
    )
