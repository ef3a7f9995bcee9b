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
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import cast

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from config.errors import InsufficientFunds
from creators.models import Creator
from gifts.services import diamonds_for
from gifts.spending import creator_spending_add, own_limit_refusal, spent_today_and_month
from memberships.models import (
    RENEWING_STATUSES,
    ChargeKind,
    EventKind,
    Membership,
    MembershipCharge,
    MembershipEvent,
    MembershipStatus,
    Tier,
)
from memberships.services.booking import (
    _charge_renewal,
    _event,
    _webhook,
    period_next,
    renewal_key,
)
from memberships.services.notices import notices_soon
from memberships.services.periods import renewal_price
from notifications.webhooks import webhook_owners_subscribed
from wallets.models import AccountKind, SpendingLimits, TransactionKind
from wallets.services import (
    SpendingLimitExceeded,
    account_get,
    platform_account,
    spending_limits_effective,
)
from wallets.services.bulk import (
    BulkTransaction,
    bulk_supported,
    ledger_post_bulk,
    wallets_lock_for_spending,
)

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


def memberships_renew(*, now: datetime | None = None, chunk_size: int = 1000) -> RenewalRun:
    """Renew every membership due at ``now``; safe to run twice, beside itself, or after a
    crash (see the module docstring). Each chunk is one transaction: set-based on PostgreSQL
    (a handful of statements per chunk, whatever its size), row by row on SQLite."""
    now = now or timezone.now()
    run = RenewalRun()
    chunk = _renew_chunk_bulk if bulk_supported() else _renew_chunk_rows
    while chunk(now=now, run=run, chunk_size=chunk_size):
        pass
    return run


def _due(*, now: datetime, chunk_size: int) -> list[Membership]:
    due = list(
        Membership.objects.select_for_update(skip_locked=True)
        .filter(status__in=RENEWING_STATUSES, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")[:chunk_size]
    )
    _load_related(due)
    return due


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


@dataclass
class _Plan:
    membership: Membership
    tier: Tier
    anchor: datetime
    count: int
    start: datetime
    end: datetime
    price: int
    transaction_id: int | None = None

    @property
    def key(self) -> str:
        return renewal_key(self.membership.pk, self.start)


def _renew_chunk_bulk(*, now: datetime, run: RenewalRun, chunk_size: int) -> bool:
    """One chunk in one transaction, set-based: lock the due rows (``SKIP LOCKED``) and the
    members' wallets (id order), decide under those locks who can pay (balance, frozen, own
    spending limits), then one statement each for the journal rows, the wallet balances, the
    entries, the memberships, the charge rows, the events and the spending counters. Those who
    cannot pay, and those to lapse, go the row-by-row way (few)."""
    with transaction.atomic():
        due = _due(now=now, chunk_size=chunk_size)
        if not due:
            return False
        plans: list[_Plan] = []
        others: list[Membership] = []
        for m in due:
            ending = (m.status == MembershipStatus.ACTIVE and not m.renews) or (
                m.status == MembershipStatus.GRACE and m.grace_until and now >= m.grace_until
            )
            if ending:
                others.append(m)
                continue
            tier = m.next_tier or m.tier
            anchor, count, start, end = period_next(m, now=now)
            price = renewal_price(membership=m, tier=tier, at=start)
            plans.append(_Plan(m, tier, anchor, count, start, end, price))

        paid, unpaid = _who_can_pay(plans, now=now)
        paid = _post(paid)
        _record(paid)
        run.renewed += len(paid)
        for m in others:
            _renew_guarded(m, run, partial(_renew_one, m, now=now))
        for plan, reason in unpaid:
            m = plan.membership
            _renew_guarded(m, run, partial(_unpaid, m, tier=plan.tier, now=now, reason=reason))
        if paid:
            notices_soon()
        return True


def _who_can_pay(plans: list[_Plan], *, now: datetime) -> tuple[list[_Plan], list]:
    wallets = wallets_lock_for_spending(user_ids=[p.membership.member_id for p in plans])
    member_ids = list(wallets)
    limited = {
        row.user_id: row
        for row in SpendingLimits.objects.filter(user_id__in=member_ids).exclude(
            daily_limit=None,
            monthly_limit=None,
            daily_limit_next_at=None,
            monthly_limit_next_at=None,
        )
    }
    spent = spent_today_and_month(user_ids=list(limited), now=now) if limited else {}
    left = {user_id: w.balance for user_id, w in wallets.items()}
    paid: list[_Plan] = []
    unpaid: list[tuple[_Plan, str]] = []
    for plan in plans:
        member_id = plan.membership.member_id
        wallet = wallets.get(member_id)
        if wallet is None or left[member_id] < plan.price:
            unpaid.append((plan, "not enough coins"))
            continue
        if wallet.is_frozen:
            unpaid.append((plan, "wallet frozen"))
            continue
        if member_id in limited:
            limits = spending_limits_effective(user_id=member_id, now=now)
            today, month = spent.get(member_id, (0, 0))
            if own_limit_refusal(limits=limits, today=today, month=month, coins=plan.price):
                unpaid.append((plan, "over your own spending limit"))
                continue
            spent[member_id] = (today + plan.price, month + plan.price)
        left[member_id] -= plan.price
        paid.append(plan)
    return paid, unpaid


def _post(plans: list[_Plan]) -> list[_Plan]:
    """The ledger transactions of ``plans`` (set-based); returns the plans whose key was new
    (a key already written means that period was paid: never again)."""
    if not plans:
        return []
    wallets = wallets_lock_for_spending(user_ids=[p.membership.member_id for p in plans])
    spent_account = platform_account(AccountKind.COINS_SPENT).pk
    issuance = platform_account(AccountKind.DIAMOND_ISSUANCE).pk
    pending: dict[int, int] = {}
    transactions = []
    for plan in plans:
        creator = plan.membership.creator
        if creator.pk not in pending:
            pending[creator.pk] = (
                creator.pending_account_id
                or account_get(kind=AccountKind.DIAMONDS_PENDING, user=creator.user).pk
            )
        diamonds = diamonds_for(plan.price)
        legs = [
            (wallets[plan.membership.member_id].account_id, -plan.price),
            (spent_account, plan.price),
            (issuance, -diamonds),
            (pending[creator.pk], diamonds),
        ]
        transactions.append(
            BulkTransaction(
                idempotency_key=plan.key,
                legs=tuple(leg for leg in legs if leg[1]),
                actor_id=plan.membership.member_id,
                memo=(
                    f"Membership renewal: {plan.tier.name} of @{creator.handle} "
                    f"to {plan.end:%Y-%m-%d}"
                ),
                reference=f"membership:{plan.membership.pk}",
            )
        )
    written = ledger_post_bulk(kind=TransactionKind.MEMBERSHIP, transactions=transactions)
    for plan in plans:
        plan.transaction_id = written.get(plan.key)
        if plan.key not in written:
            log.error("membership %s: period %s was already paid", plan.membership.pk, plan.start)
    return [p for p in plans if p.key in written]


def _record(plans: list[_Plan]) -> None:
    """Advance the memberships, write their charge rows, events, webhooks and spending."""
    if not plans:
        return
    created = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Membership._meta.db_table} m SET tier_id = v.tier, next_tier_id = NULL, "  # noqa: S608 (the model's table; values are parameters)
            "coins_per_month = v.price, status = %s, grace_until = NULL, anchor = v.anchor, "
            "period_count = v.count, current_period_end = v.period_end, "
            "next_attempt_at = v.period_end, months = m.months + 1, updated_at = %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], "
            "%s::int[], %s::timestamptz[]) AS v(id, tier, price, anchor, count, period_end) "
            "WHERE m.id = v.id",
            [
                MembershipStatus.ACTIVE.value,
                created,
                [p.membership.pk for p in plans],
                [p.tier.pk for p in plans],
                [p.price for p in plans],
                [p.anchor for p in plans],
                [p.count for p in plans],
                [p.end for p in plans],
            ],
        )
    MembershipCharge.objects.bulk_create(
        [
            MembershipCharge(
                membership_id=p.membership.pk,
                tier_id=p.tier.pk,
                kind=ChargeKind.RENEWAL,
                payer_id=p.membership.member_id,
                # _post hands on only the plans it wrote: each has its journal id.
                transaction_id=cast(int, p.transaction_id),
                coins=p.price,
                diamonds=diamonds_for(p.price),
                period_start=p.start,
                period_end=p.end,
                created_at=created,
            )
            for p in plans
        ]
    )
    events = MembershipEvent.objects.bulk_create(
        [
            MembershipEvent(
                membership_id=p.membership.pk,
                tier_id=p.tier.pk,
                kind=EventKind.RENEWED,
                notify=True,
                detail={"coins": p.price, "period_end": p.end.isoformat()},
                created_at=created,
            )
            for p in plans
        ]
    )
    for p in plans:  # for the webhook payload below
        m = p.membership
        m.tier, m.status, m.current_period_end = p.tier, MembershipStatus.ACTIVE, p.end
        m.months += 1
    subscribed = webhook_owners_subscribed(
        user_ids=[p.membership.creator.user_id for p in plans], type="membership.renewed"
    )
    for p, event in zip(plans, events, strict=True):
        if p.membership.creator.user_id in subscribed:
            _webhook(p.membership, EventKind.RENEWED, event_id=event.pk)
    spending: dict[int, int] = defaultdict(int)
    for p in plans:
        spending[p.membership.member_id] += p.price
    creator_spending_add(coins_by_user=spending)


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
