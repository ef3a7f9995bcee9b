"""Membership periods: whole calendar months from an anchor, and the price of a renewal."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from django.conf import settings

from memberships.models import Membership, MembershipStatus, Tier


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months (UTC), the day clamped to the month's last day:
    an anchor of Jan 31 gives Feb 28, Mar 31, Apr 30 (always counted from the anchor)."""
    moment = moment.astimezone(UTC)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def renewal_price(*, membership: Membership, tier: Tier, at: datetime) -> int:
    """What the renewal at ``at`` costs: a switched-to tier's price; otherwise the tier's
    price once its change is in effect, or the price the member pays now."""
    return price_at(
        switching=membership.next_tier_id is not None and tier.pk == membership.next_tier_id,
        tier_price=tier.coins_per_month,
        tier_price_effective_at=tier.price_effective_at,
        member_price=membership.coins_per_month,
        at=at,
    )


def price_at(
    *,
    switching: bool,
    tier_price: int,
    tier_price_effective_at: datetime | None,
    member_price: int,
    at: datetime,
) -> int:
    """``renewal_price`` on plain values (the set-based renewal run reads rows as tuples)."""
    if switching or tier_price_effective_at is None or tier_price_effective_at <= at:
        return tier_price
    return member_price


def period_after(
    *, status: str, anchor: datetime, period_count: int, current_period_end: datetime, now: datetime
) -> tuple[datetime, int, datetime, datetime]:
    """``(anchor, period count, start, end)`` of the period a renewal at ``now`` pays: it runs
    on from the last one (a payment in grace covers the days since it was due); an active one
    found more than the grace period late (the renewal did not run) starts now."""
    late = now - current_period_end > timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
    if late and status == MembershipStatus.ACTIVE:
        anchor, count, start = now, 1, now
    else:
        count, start = period_count + 1, current_period_end
    return anchor, count, start, add_months(anchor, count)
