"""Reads about memberships: tiers with their member counts, a viewer's memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from memberships.models import (
    NOTIFY_KINDS,
    RENEWING_STATUSES,
    Membership,
    MembershipCharge,
    MembershipEvent,
    MembershipStatus,
    Tier,
)

if TYPE_CHECKING:
    from accounts.models import User


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


def memberships_of(*, user: User) -> QuerySet[Membership]:
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


def notices_of(*, user: User, limit: int = 10) -> QuerySet[MembershipEvent]:
    return (
        MembershipEvent.objects.filter(membership__member=user, kind__in=NOTIFY_KINDS)
        .select_related("membership__creator")
        .order_by("-id")[:limit]
    )


# --- Badges and fan levels ------------------------------------------------------------------

FAN_POINTS_PER_DAY = 20
DAYS_PER_MEMBER_MONTH = 30


def member_badges(creator_id: int, user_id: int) -> list[dict]:
    """The ``member`` badge (registered with ``gifts.badges``): tier and months."""
    membership = membership_live(member_id=user_id, creator_id=creator_id)
    if membership is None:
        return []
    months = membership.months
    return [
        {
            "kind": "member",
            "label": f"{membership.tier.name} · {months} month{'s' if months != 1 else ''}",
            "value": months,
        }
    ]


def fan_points(*, creator_id: int, user_id: int) -> int:
    """Coins given to this creator (gifts and membership months paid) plus
    ``FAN_POINTS_PER_DAY`` per day supported (days with a gift, 30 per membership month)."""
    from gifts.selectors import creator_support

    gift_coins, gift_days = creator_support(creator_id=creator_id, user_id=user_id)
    member_coins = (
        MembershipCharge.objects.filter(
            payer_id=user_id, membership__creator_id=creator_id
        ).aggregate(total=Sum("coins"))["total"]
        or 0
    )
    months = (
        Membership.objects.filter(member_id=user_id, creator_id=creator_id)
        .values_list("months", flat=True)
        .first()
        or 0
    )
    days = gift_days + DAYS_PER_MEMBER_MONTH * months
    return gift_coins + member_coins + FAN_POINTS_PER_DAY * days


def fan_level(*, creator_id: int, user_id: int) -> int:
    """The viewer's fan level for one creator (1..50, the same curve as the supporter level
    applied to ``fan_points``), cached for a minute."""
    from django.core.cache import cache

    from gifts.selectors import LEVEL_CACHE_SECONDS, level_for

    key = f"fan-level:{creator_id}:{user_id}"
    level = cache.get(key)
    if level is None:
        level = level_for(fan_points(creator_id=creator_id, user_id=user_id))
        cache.set(key, level, LEVEL_CACHE_SECONDS)
    return level
