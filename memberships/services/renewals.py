"""The monthly renewal run (Celery beat), exactly once per period.

A month's ledger key names the membership and the period's start
(``membership-renewal:<id>:<start>``) and ``MembershipCharge`` is unique per (membership,
period start), so a second debit for one period is impossible whatever runs it. The run takes
due memberships in chunks with ``FOR UPDATE SKIP LOCKED`` (two runs share the work, never a
row), and each chunk commits as a whole: a worker killed mid-chunk leaves those memberships
due, and the next run renews them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from config.errors import InsufficientFunds
from creators.models import Creator
from memberships.models import (
    RENEWING_STATUSES,
    EventKind,
    Membership,
    MembershipStatus,
    Tier,
)
from memberships.services.booking import _charge_renewal, _event
from memberships.services.periods import renewal_price

log = logging.getLogger(__name__)


@dataclass
class RenewalRun:
    renewed: int = 0
    grace: int = 0
    lapsed: int = 0
    retry_later: int = 0
    errors: int = 0

    @property
    def summary(self) -> str:
        return (
            f"renew_memberships: {self.renewed} renewed, {self.grace} into grace, "
            f"{self.lapsed} lapsed, {self.retry_later} still in grace, {self.errors} errors"
        )


def memberships_renew(*, now: datetime | None = None, chunk_size: int = 200) -> RenewalRun:
    """Renew every membership due at ``now``; safe to run twice, beside itself, or after a
    crash (see the module docstring). Each chunk is one transaction."""
    now = now or timezone.now()
    run = RenewalRun()
    while True:
        with transaction.atomic():
            due = list(
                Membership.objects.select_for_update(skip_locked=True)
                .filter(status__in=RENEWING_STATUSES, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")[:chunk_size]
            )
            if not due:
                return run
            _load_related(due)
            for membership in due:
                try:
                    with transaction.atomic():
                        outcome = _renew_one(membership, now=now)
                except SoftTimeLimitExceeded:
                    raise  # the task's time is up: this chunk rolls back, the next run redoes it
                except Exception:
                    # Never stall the run on one row: look at it again after the retry delay.
                    log.exception("renewal of membership %s failed", membership.pk)
                    Membership.objects.filter(pk=membership.pk).update(
                        next_attempt_at=now + timedelta(minutes=settings.MEMBERSHIP_RETRY_MINUTES)
                    )
                    run.errors += 1
                    continue
                setattr(run, outcome, getattr(run, outcome) + 1)


def _load_related(memberships: list[Membership]) -> None:
    tier_ids = {m.tier_id for m in memberships} | {m.next_tier_id for m in memberships}
    tiers = Tier.objects.in_bulk([t for t in tier_ids if t])
    creators = Creator.objects.select_related("user", "pending_account").in_bulk(
        {m.creator_id for m in memberships}
    )
    members = get_user_model().objects.in_bulk({m.member_id for m in memberships})
    for m in memberships:
        m.tier = tiers[m.tier_id]
        m.next_tier = tiers.get(m.next_tier_id) if m.next_tier_id else None
        m.creator = creators[m.creator_id]
        m.member = members[m.member_id]


def _renew_one(membership: Membership, *, now: datetime) -> str:
    if membership.status == MembershipStatus.ACTIVE and not membership.renews:
        return _lapse(membership, reason="not renewing")
    grace_until = membership.grace_until
    if membership.status == MembershipStatus.GRACE and grace_until and now >= grace_until:
        return _lapse(membership, reason="unpaid after the grace period")
    tier = membership.next_tier or membership.tier
    # A failed attempt rolls back to here (its journal row too): nothing half-paid remains.
    try:
        with transaction.atomic():
            paid = _charge_renewal(membership, tier=tier, key=None, now=now, strict=False)
    except InsufficientFunds:
        paid = False
    if paid:
        return "renewed"
    retry_at = now + timedelta(minutes=settings.MEMBERSHIP_RETRY_MINUTES)
    if membership.status == MembershipStatus.ACTIVE:
        grace_until = membership.current_period_end + timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
        if grace_until <= now:  # found late: give the grace period from now
            grace_until = now + timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
        Membership.objects.filter(pk=membership.pk).update(
            status=MembershipStatus.GRACE,
            grace_until=grace_until,
            next_attempt_at=min(retry_at, grace_until),
        )
        membership.status, membership.grace_until = MembershipStatus.GRACE, grace_until
        price = renewal_price(membership=membership, tier=tier, at=membership.current_period_end)
        _event(
            membership,
            EventKind.GRACE,
            message=(
                f"Your {tier.name} membership of @{membership.creator.handle} could not renew "
                f"({price:,} coins). Top up before {grace_until:%Y-%m-%d %H:%M} UTC to keep it."
            ),
            coins=price,
            grace_until=grace_until.isoformat(),
        )
        return "grace"
    Membership.objects.filter(pk=membership.pk).update(
        next_attempt_at=min(retry_at, membership.grace_until or retry_at)
    )
    return "retry_later"


def _lapse(membership: Membership, *, reason: str) -> str:
    Membership.objects.filter(pk=membership.pk).update(
        status=MembershipStatus.LAPSED, renews=False, next_tier=None
    )
    membership.status = MembershipStatus.LAPSED
    _event(
        membership,
        EventKind.LAPSED,
        message=f"Your membership of @{membership.creator.handle} has ended ({reason}).",
        reason=reason,
    )
    return "lapsed"
