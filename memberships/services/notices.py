"""Member notices (grace, lapse, gift received, price change): the hook for email."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from memberships.models import MembershipEvent


def notices_pending(*, limit: int = 500) -> list[MembershipEvent]:
    """Notices not sent yet (grace, lapse, gift received, price change), oldest first. A
    mailer sends each and calls ``notices_mark_sent`` (same transaction as its own outbox)."""
    return list(
        MembershipEvent.objects.filter(notify=True, notified_at__isnull=True)
        .select_related("membership__member", "membership__creator", "tier")
        .order_by("id")[:limit]
    )


@transaction.atomic
def notices_mark_sent(*, event_ids: list[int]) -> int:
    return MembershipEvent.objects.filter(pk__in=event_ids, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
