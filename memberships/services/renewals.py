"""The monthly renewal run (Celery beat), exactly once per period.

A month's ledger key names the membership and the period's start
(``membership-renewal:<id>:<start>``) and ``MembershipCharge`` is unique per (membership,
period start), so a second debit for one period is impossible whatever runs it. The run takes
due memberships in chunks with ``FOR UPDATE SKIP LOCKED`` (two runs share the work, never a
row), and each chunk commits as a whole: a worker killed mid-chunk leaves those memberships
due, and the next run renews them. On PostgreSQL a chunk is set-based (``renewal_chunk``) and
``MEMBERSHIP_RENEWAL_WORKERS`` chunks run at once, each on its own connection, exactly as two
beat processes would: they share the work through ``SKIP LOCKED`` and lock wallets in id order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from config.errors import InsufficientFunds
from memberships.models import EventKind, Membership, MembershipStatus, Tier
from memberships.services.booking import _charge_renewal, _event
from memberships.services.periods import renewal_price
from memberships.services.renewal_chunk import Plan, renew_chunk
from wallets.services import SpendingLimitExceeded
from wallets.services.bulk import bulk_supported

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

    def add(self, other: RenewalRun) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def memberships_renew(
    *, now: datetime | None = None, chunk_size: int | None = None, workers: int | None = None
) -> RenewalRun:
    """Renew every membership due at ``now``; safe to run twice, beside itself, or after a
    crash (see the module docstring). Each chunk (``MEMBERSHIP_RENEWAL_CHUNK``) is one
    transaction: set-based on PostgreSQL, ``workers`` (``MEMBERSHIP_RENEWAL_WORKERS``) chunks
    at a time; row by row on SQLite. Inside a transaction (a test's) the chunks run one after
    the other on its connection."""
    now = now or timezone.now()
    chunk_size = chunk_size or settings.MEMBERSHIP_RENEWAL_CHUNK
    workers = settings.MEMBERSHIP_RENEWAL_WORKERS if workers is None else workers
    if not bulk_supported():
        run = RenewalRun()
        while _renew_chunk_rows(now=now, run=run, chunk_size=chunk_size):
            pass
        return run
    if workers <= 1 or connection.in_atomic_block:
        run = RenewalRun()
        while _renew_chunk_bulk(now=now, run=run, chunk_size=chunk_size):
            pass
        return run
    return _renew_in_parallel(now=now, chunk_size=chunk_size, workers=workers)


def _renew_chunk_bulk(*, now: datetime, run: RenewalRun, chunk_size: int) -> bool:
    return renew_chunk(
        now=now, run=run, chunk_size=chunk_size, one_by_one=partial(_one_by_one, now=now, run=run)
    )


def _renew_in_parallel(*, now: datetime, chunk_size: int, workers: int) -> RenewalRun:
    """``workers`` threads, each renewing chunk after chunk on its own connection until none
    is due. Like that many beat processes at once: ``SKIP LOCKED`` gives each a different
    chunk, and wallets are locked in id order, so two chunks paying from one wallet wait for
    each other and never deadlock. An error (or the task's time limit) stops them all after
    their current chunk and is raised."""
    stop = threading.Event()
    runs = [RenewalRun() for _ in range(workers)]
    errors: list[BaseException] = []

    def worker(run: RenewalRun) -> None:
        try:
            while not stop.is_set() and _renew_chunk_bulk(now=now, run=run, chunk_size=chunk_size):
                pass
        except BaseException as exc:  # raised by the caller below
            errors.append(exc)
            stop.set()
        finally:
            connections.close_all()  # this thread's connections only

    threads = [
        threading.Thread(target=worker, args=(run,), name=f"renewals-{i}", daemon=True)
        for i, run in enumerate(runs)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    total = RenewalRun()
    for run in runs:
        total.add(run)
    if errors:
        log.error("renewal run stopped: %s", total.summary)
        raise errors[0]
    return total


def _due(*, now: datetime, chunk_size: int) -> list[Membership]:
    return list(
        Membership.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("tier", "next_tier", "creator__user", "creator__pending_account", "member")
        .filter(status__in=[MembershipStatus.ACTIVE, MembershipStatus.GRACE])
        .filter(next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")[:chunk_size]
    )


def _renew_guarded(membership: Membership, run: RenewalRun, step) -> None:
    """Run ``step`` for one membership in a savepoint; never stall the run on one row."""
    try:
        with transaction.atomic():
            outcome = step()
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: this chunk rolls back, the next run redoes it
    except Exception:
        log.exception("renewal of membership %s failed", membership.pk)
        Membership.objects.filter(pk=membership.pk).update(
            next_attempt_at=timezone.now() + timedelta(minutes=settings.MEMBERSHIP_RETRY_MINUTES)
        )
        run.errors += 1
        return
    setattr(run, outcome, getattr(run, outcome) + 1)


def _renew_chunk_rows(*, now: datetime, run: RenewalRun, chunk_size: int) -> bool:
    with transaction.atomic():
        due = _due(now=now, chunk_size=chunk_size)
        for membership in due:
            _renew_guarded(membership, run, partial(_renew_one, membership, now=now))
        return bool(due)


def _one_by_one(
    ending: list[int], unpaid: list[tuple[Plan, str]], *, now: datetime, run: RenewalRun
) -> None:
    """The set-based chunk's few other rows (locked by it): those that end, and those that
    could not pay (into grace, or retry later in it)."""
    reasons = {plan.membership_id: reason for plan, reason in unpaid}
    rows = Membership.objects.select_related(
        "tier", "next_tier", "creator__user", "creator__pending_account", "member"
    ).in_bulk([*ending, *reasons])
    for membership_id in ending:
        m = rows[membership_id]
        _renew_guarded(m, run, partial(_renew_one, m, now=now))
    for membership_id, reason in reasons.items():
        m = rows[membership_id]
        tier = m.next_tier or m.tier
        _renew_guarded(m, run, partial(_unpaid, m, tier=tier, now=now, reason=reason))


def _renew_one(membership: Membership, *, now: datetime) -> str:
    if membership.status == MembershipStatus.ACTIVE and not membership.renews:
        return _lapse(membership, reason="not renewing")
    grace_until = membership.grace_until
    if membership.status == MembershipStatus.GRACE and grace_until and now >= grace_until:
        return _lapse(membership, reason="unpaid after the grace period")
    tier = membership.next_tier or membership.tier
    # A failed attempt rolls back to here (its journal row too): nothing half-paid remains.
    reason = "not enough coins"
    try:
        with transaction.atomic():
            paid = _charge_renewal(membership, tier=tier, key=None, now=now, strict=False)
    except InsufficientFunds:
        paid = False
    except SpendingLimitExceeded:
        paid, reason = False, "over your own spending limit"
    if paid:
        return "renewed"
    return _unpaid(membership, tier=tier, now=now, reason=reason)


def _unpaid(membership: Membership, *, tier: Tier, now: datetime, reason: str) -> str:
    """A renewal that could not be paid: into grace (with a notice), or retry later in it."""
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
                f"({price:,} coins: {reason}). Top up before {grace_until:%Y-%m-%d %H:%M} UTC to keep it."
            ),
            coins=price,
            reason=reason,
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
