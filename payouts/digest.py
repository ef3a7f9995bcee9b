"""The creators' weekly earnings digest (Mondays; opt-out, one-click unsubscribe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from creators.models import Creator
from gifts.models import GiftEvent
from notifications.models import EmailCategory
from notifications.services import email_enqueue, site_url
from wallets.models import Account, AccountKind


def last_week(now: datetime | None = None) -> tuple[datetime, datetime, str]:
    """[Monday 00:00 UTC of last week, this Monday 00:00 UTC) and its ISO name (2026-W48)."""
    now = (now or timezone.now()).astimezone(UTC)
    end = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=7)
    year, week, _day = start.isocalendar()
    return start, end, f"{year}-W{week:02d}"


def weekly_digest_enqueue(*, now: datetime | None = None) -> int:
    """One digest per creator who received gifts last week; safe to rerun (one per week and
    person: the outbox's unique event key). Returns how many creators were considered."""
    start, end, week = last_week(now)
    stats = (
        GiftEvent.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("creator_id")
        .annotate(diamonds=Sum("diamonds"), gifts=Count("id"))
    )
    by_creator = {row["creator_id"]: row for row in stats}
    creators = Creator.objects.filter(pk__in=list(by_creator), is_active=True).select_related(
        "user"
    )
    for creator in creators:
        row = by_creator[creator.pk]
        top = (
            GiftEvent.objects.filter(creator=creator, created_at__gte=start, created_at__lt=end)
            .values("sender__username")
            .annotate(coins=Sum("coins"))
            .order_by("-coins", "sender__username")[:3]
        )
        available = (
            Account.objects.filter(user=creator.user, kind=AccountKind.DIAMONDS_AVAILABLE)
            .values_list("balance", flat=True)
            .first()
            or 0
        )
        value = (Decimal(row["diamonds"]) * settings.DIAMOND_VALUE).quantize(Decimal("0.01"))
        with transaction.atomic():
            email_enqueue(
                event=f"digest:{week}",
                user=creator.user,
                template="weekly_digest",
                category=EmailCategory.DIGEST,
                context={
                    "week": week,
                    "diamonds": f"{row['diamonds']:,}",
                    "value": f"{settings.PAYOUT_CURRENCY} {value:,}",
                    "gifts": row["gifts"],
                    "available": f"{available:,}",
                    "top_supporters": [
                        {"username": t["sender__username"], "coins": f"{t['coins']:,}"} for t in top
                    ],
                    "dashboard_url": site_url("/creator/"),
                },
            )
    return len(by_creator)
