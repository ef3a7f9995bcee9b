"""Reads about creators: profiles and earnings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from djmoney.money import Money

from creators.models import Creator, LiveSession
from wallets.models import Account, AccountKind, Entry, TransactionKind
from wallets.services import account_balance

if TYPE_CHECKING:
    from accounts.models import User


def creator_find(*, handle: str) -> Creator | None:
    # Handles are stored lower-case (creator_create), so this is a unique-index lookup.
    handle = (handle or "").strip().lower()
    if not 0 < len(handle) <= 30:
        return None
    return Creator.objects.select_related("user").filter(handle=handle).first()


def creator_of(*, user: User) -> Creator | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Creator.objects.filter(user=user).first()


@dataclass(frozen=True)
class Earnings:
    diamonds_pending: int
    diamonds_available: int
    diamonds_in_payout: int
    diamonds_paid: int

    @property
    def available_value(self) -> Money:
        return diamonds_value(self.diamonds_available)


def diamonds_value(diamonds: int) -> Money:
    amount = (Decimal(diamonds) * settings.DIAMOND_VALUE).quantize(Decimal("0.01"))
    return Money(amount, settings.PAYOUT_CURRENCY)


def creator_earnings(*, creator: Creator) -> Earnings:
    """Pending (on hold), available (ready for payout), in payout, and paid out so far."""
    accounts = {
        a.kind: a
        for a in Account.objects.filter(
            user_id=creator.user_id,
            kind__in=[
                AccountKind.DIAMONDS_PENDING,
                AccountKind.DIAMONDS_AVAILABLE,
                AccountKind.DIAMONDS_IN_PAYOUT,
            ],
        )
    }

    def balance(kind: str) -> int:
        account = accounts.get(kind)
        return account_balance(account) if account else 0

    in_payout = accounts.get(AccountKind.DIAMONDS_IN_PAYOUT)
    paid = 0
    if in_payout is not None:
        paid = -(
            Entry.objects.filter(
                account_id=in_payout.pk, transaction__kind=TransactionKind.PAYOUT_PAID
            ).aggregate(total=Sum("amount"))["total"]
            or 0
        )
    return Earnings(
        diamonds_pending=balance(AccountKind.DIAMONDS_PENDING),
        diamonds_available=balance(AccountKind.DIAMONDS_AVAILABLE),
        diamonds_in_payout=balance(AccountKind.DIAMONDS_IN_PAYOUT),
        diamonds_paid=paid,
    )


def _open_sessions() -> QuerySet[LiveSession]:
    fresh = timezone.now() - timedelta(hours=settings.LIVE_MAX_HOURS)
    return LiveSession.objects.filter(ended_at__isnull=True, started_at__gte=fresh)


def creator_live_session(*, creator_id: int) -> LiveSession | None:
    """The creator's open live session (one forgotten past ``LIVE_MAX_HOURS`` counts as over)."""
    return _open_sessions().filter(creator_id=creator_id).first()


def creators_live_now(*, limit: int = 24) -> list[Creator]:
    ids = _open_sessions().order_by("-started_at").values_list("creator_id", flat=True)[:limit]
    by_id = Creator.objects.filter(pk__in=list(ids), is_active=True).in_bulk()
    return [by_id[i] for i in ids if i in by_id]


def creators_search(*, query: str, limit: int = 50) -> QuerySet[Creator]:
    query = (query or "").strip()[:80]
    found = Creator.objects.filter(is_active=True)
    if query:
        found = found.filter(Q(handle__icontains=query) | Q(display_name__icontains=query))
    return found.order_by("display_name", "handle")[:limit]
