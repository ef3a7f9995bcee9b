"""Reads about memberships: tiers with their member counts, a viewer's memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from memberships.models import (
    RENEWING_STATUSES,
    Membership,
    MembershipEvent,
    MembershipStatus,
    Tier,
)


def live_q(prefix: str = "", now: datetime | None = None) -> Q:
    """Memberships whose member has the perks now (a cancelled one until its period ends)."""
    now = now or timezone.now()
    return Q(**{f"{prefix}status__in": RENEWING_STATUSES}) | Q(
        **{f"{prefix}status": MembershipStatus.CANCELLED, f"{prefix}current_period_end__gt": now}
    )


def tiers_of(*, creator_id: int) -> QuerySet[Tier]:
    """A creator's tiers, ``members`` (live members) and ``monthly_coins`` (what the members
    who renew pay a month) annotated."""
    return (
        Tier.objects.filter(creator_id=creator_id)
        .annotate(
            members=Count("memberships", filter=live_q("memberships__")),
            monthly_coins=Sum(
                "memberships__coins_per_month",
                filter=Q(memberships__status__in=RENEWING_STATUSES, memberships__renews=True),
            ),
        )
        .order_by("position")
    )


def memberships_of(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(member=user)
        .select_related("creator", "tier", "next_tier")
        .order_by("-id")
    )


def membership_live(*, member_id: int, creator_id: int) -> Membership | None:
    return (
        Membership.objects.filter(live_q(), member_id=member_id, creator_id=creator_id)
        .select_related("tier")
        .first()
    )


@dataclass(frozen=True)
class Renewal:
    at: datetime
    coins: int
    tier_id: int
    tier_name: str
    price_changes: bool  # the member's price changes at this renewal


def renewal_preview(membership: Membership) -> Renewal | None:
    """What the next renewal will cost and when (None: it will not renew)."""
    from memberships.services import renewal_price

    if membership.status not in RENEWING_STATUSES or not membership.renews:
        return None
    tier = membership.next_tier or membership.tier
    at = membership.current_period_end
    coins = renewal_price(membership=membership, tier=tier, at=at)
    return Renewal(at, coins, tier.pk, tier.name, coins != membership.coins_per_month)


def notices_of(*, user, limit: int = 10) -> QuerySet[MembershipEvent]:
    return (
        MembershipEvent.objects.filter(membership__member=user, notify=True)
        .select_related("membership__creator")
        .order_by("-id")[:limit]
    )
