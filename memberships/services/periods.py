"""Membership periods: whole calendar months from an anchor, and the price of a renewal."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from memberships.models import Membership, Tier


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
    if membership.next_tier_id is not None and tier.pk == membership.next_tier_id:
        return tier.coins_per_month
    if tier.price_effective_at is None or tier.price_effective_at <= at:
        return tier.coins_per_month
    return membership.coins_per_month
