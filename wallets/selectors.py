from django.db.models import QuerySet

from wallets.models import Account, AccountKind, Entry


def wallet_find(*, user) -> Account | None:
    return Account.objects.filter(kind=AccountKind.WALLET, user=user).first()


def wallet_entries(*, user) -> QuerySet[Entry]:
    """The user's own wallet entries with their transaction, newest first."""
    return (
        Entry.objects.filter(account__kind=AccountKind.WALLET, account__user=user)
        .select_related("transaction")
        .order_by("-id")
    )
