"""What members are told: events written with ``notify`` become email through the outbox.

Layering: ``memberships`` imports ``notifications`` (which sits at the bottom, beside
``accounts``), never the other way round. The event row (``MembershipEvent`` with ``notify``)
is written in the transaction of the change it tells about, so it exists exactly when the
change does; ``membership_notices_send`` then turns pending rows into outbox mails
(``email_enqueue``, unique per event and person) and marks them sent in one transaction. Run
twice or beside itself, it writes each mail once (``SKIP LOCKED`` and the outbox's unique key);
killed midway, its transaction rolls back and the next run does the same rows. The renewal run
writes thousands of events set-based and leaves the mails to this, off its critical path.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from memberships.models import EventKind, MembershipEvent
from notifications.services import email_enqueue, site_url

log = logging.getLogger(__name__)

SUBJECTS = {
    EventKind.JOINED: "Welcome to {tier} of @{creator}",
    EventKind.RENEWED: "Your {tier} membership of @{creator} renewed",
    EventKind.GIFTED: "{gifted_by} gifted you a month of {tier} (@{creator})",
    EventKind.GRACE: "Your {tier} membership of @{creator} could not renew",
    EventKind.LAPSED: "Your membership of @{creator} has ended",
    EventKind.CANCELLED: "Your {tier} membership of @{creator} is cancelled",
    EventKind.PRICE_CHANGE: "{tier} of @{creator} changes price",
}


def notices_pending(*, limit: int = 500) -> list[MembershipEvent]:
    """Notices not mailed yet, oldest first."""
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


def _context(event: MembershipEvent) -> dict:
    membership = event.membership
    if membership is None:
        raise ValueError(f"membership event {event.pk} names no membership")
    creator = membership.creator
    detail = event.detail or {}
    tier_name = event.tier.name if event.tier else ""
    return {
        "kind": str(event.kind),
        "subject": SUBJECTS[EventKind(event.kind)].format(
            tier=tier_name,
            creator=creator.handle,
            gifted_by=detail.get("gifted_by", "Someone"),
        ),
        "message": event.message,
        "tier": tier_name,
        "creator": creator.handle,
        "coins": detail.get("coins") or detail.get("new"),
        "old_coins": detail.get("old"),
        "period_end": membership.current_period_end,
        "grace_until": detail.get("grace_until", ""),
        "gifted_by": detail.get("gifted_by", ""),
        "memberships_url": site_url("/wallet/memberships/"),
        "creator_url": site_url(f"/creators/{creator.handle}/"),
    }


def membership_notices_send(*, limit: int = 500) -> int:
    """Write the mails of up to ``limit`` pending notices to the email outbox; returns how
    many notices were handled. One transaction: the outbox rows and the marks commit together."""
    with transaction.atomic():
        events = list(
            MembershipEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(notify=True, notified_at__isnull=True)
            .select_related("membership__member", "membership__creator", "tier")
            .order_by("id")[:limit]
        )
        for event in events:
            if event.membership is None or event.kind not in SUBJECTS:
                continue
            email_enqueue(
                event=f"membership_{event.kind}:{event.pk}",
                user=event.membership.member,
                template="membership",
                context=_context(event),
            )
        MembershipEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            notified_at=timezone.now()
        )
        return len(events)


def membership_notices_send_all(*, chunk: int = 500, max_chunks: int = 200) -> int:
    """Every pending notice, a chunk per transaction (the beat task; after a big renewal run)."""
    total = 0
    for _ in range(max_chunks):
        done = membership_notices_send(limit=chunk)
        total += done
        if done < chunk:
            break
    return total


def notices_soon() -> None:
    """After the commit, ask a worker to mail what this transaction noticed (the beat sweep
    does it within a minute anyway: a broker that is down loses nothing)."""

    def queue() -> None:
        from memberships.tasks import membership_notices_send_task

        try:
            membership_notices_send_task.delay()
        except Exception:  # the beat sweep sends them
            log.warning("could not queue membership notices; the beat sweep will send them")

    transaction.on_commit(queue)
