"""One chunk of the renewal run, set-based on PostgreSQL (``renewals.memberships_renew``).

A chunk is one transaction of a fixed handful of statements, whatever its size:

1. the due rows, locked ``FOR UPDATE SKIP LOCKED`` and read as tuples with the tier they renew
   into and their creator (one query);
2. the members' coin wallets, locked in id order (``wallets_lock_for_spending``), and, for the
   few members who set their own spending limits, what they spent today and this month;
3. who can pay is decided in Python under those locks (balance, frozen, own limits; a member
   with several memberships due pays them in order from one balance);
4. the ledger: one statement writes the journal rows, the wallet debits and the entries
   (``wallets.services.bulk.ledger_spend_bulk``);
5. one statement advances the memberships and writes the charge rows and the events; one
   upsert counts the coins against the members' spending (``gifts.spending``).

The spending limit is checked and counted under the member's wallet lock, with the clock of
the chunk (the day and month the coins are counted in): every other spender (the gift
function, ``ledger_post``'s debit in joins and gifted memberships) takes that lock before it
reads the counter, so a gift and a renewal at the same moment are counted one after the other.
Those who cannot pay and those that end go row by row (``renewals``), under the same locks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from creators.models import Creator
from gifts.services import diamonds_for
from gifts.spending import creator_spending_add, own_limit_refusal, spent_today_and_month
from memberships.models import Membership, MembershipStatus
from memberships.services.booking import _webhook, renewal_key
from memberships.services.notices import notices_soon
from memberships.services.periods import period_after, price_at
from notifications.webhooks import webhook_owners_subscribed
from wallets.models import AccountKind, SpendingLimits, TransactionKind
from wallets.services import account_get, platform_account, spending_limits_effective
from wallets.services.bulk import (
    SpendingWallet,
    Spends,
    ledger_spend_bulk,
    wallets_lock_for_spending,
)

log = logging.getLogger(__name__)

_DUE = """
SELECT m.id, m.member_id, m.creator_id, m.status, m.renews, m.next_tier_id, m.coins_per_month,
       m.anchor, m.period_count, m.current_period_end, m.grace_until,
       t.id, t.name, t.coins_per_month, t.price_effective_at,
       c.handle, c.user_id, c.pending_account_id
FROM memberships_membership m
JOIN memberships_tier t ON t.id = coalesce(m.next_tier_id, m.tier_id)
JOIN creators_creator c ON c.id = m.creator_id
WHERE m.status IN ('active', 'grace') AND m.next_attempt_at <= %s
ORDER BY m.next_attempt_at, m.id
LIMIT %s
FOR UPDATE OF m SKIP LOCKED
"""

_RECORD = """
WITH v AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tiers)s::bigint[], %(prices)s::bigint[],
                         %(diamonds)s::bigint[], %(payers)s::bigint[], %(txs)s::bigint[],
                         %(anchors)s::timestamptz[], %(counts)s::int[],
                         %(starts)s::timestamptz[], %(ends)s::timestamptz[], %(iso)s::text[])
    WITH ORDINALITY AS v(id, tier, price, diamonds, payer, tx, anchor, count, period_start,
                         period_end, iso, n)
), advanced AS (
    UPDATE memberships_membership m SET tier_id = v.tier, next_tier_id = NULL,
        coins_per_month = v.price, status = 'active', grace_until = NULL, anchor = v.anchor,
        period_count = v.count, current_period_end = v.period_end,
        next_attempt_at = v.period_end, months = m.months + 1, updated_at = %(now)s
    -- The id list makes it an index lookup, not a hash join over every membership.
    FROM v WHERE m.id = v.id AND m.id = ANY(%(ids)s::bigint[])
), charged AS (
    INSERT INTO memberships_membershipcharge (membership_id, tier_id, kind, payer_id,
        transaction_id, coins, diamonds, period_start, period_end, created_at)
    SELECT id, tier, 'renewal', payer, tx, price, diamonds, period_start, period_end, %(now)s
    FROM v ORDER BY n
)
INSERT INTO memberships_membershipevent (membership_id, tier_id, kind, actor_id, message,
    detail, notify, notified_at, created_at)
SELECT id, tier, 'renewed', NULL, '', jsonb_build_object('coins', price, 'period_end', iso),
       true, NULL, %(now)s
FROM v ORDER BY n
RETURNING membership_id, id
"""


@dataclass(slots=True)
class Plan:
    """One due membership's renewal, from its row."""

    membership_id: int
    member_id: int
    creator_id: int
    creator_user_id: int
    handle: str
    pending_account_id: int | None
    tier_id: int
    tier_name: str
    anchor: datetime
    count: int
    start: datetime
    end: datetime
    price: int
    transaction_id: int | None = None


@dataclass
class Chunk:
    """What a chunk found: the renewals to pay, and the rows that go one by one."""

    plans: list[Plan]
    ending: list[int]  # memberships that lapse (not renewing, or grace is over)


def due_lock(*, now: datetime, chunk_size: int) -> Chunk | None:
    """Lock up to ``chunk_size`` due memberships (skipping those another run holds) and plan
    their renewals; ``None`` when none is due."""
    with connection.cursor() as cursor:
        cursor.execute(_DUE, [now, chunk_size])
        rows = cursor.fetchall()
    if not rows:
        return None
    chunk = Chunk(plans=[], ending=[])
    for (
        membership_id,
        member_id,
        creator_id,
        status,
        renews,
        next_tier_id,
        member_price,
        anchor,
        period_count,
        period_end,
        grace_until,
        tier_id,
        tier_name,
        tier_price,
        tier_price_effective_at,
        handle,
        creator_user_id,
        pending_account_id,
    ) in rows:
        if (status == MembershipStatus.ACTIVE and not renews) or (
            status == MembershipStatus.GRACE and grace_until and now >= grace_until
        ):
            chunk.ending.append(membership_id)
            continue
        anchor, count, start, end = period_after(
            status=status,
            anchor=anchor,
            period_count=period_count,
            current_period_end=period_end,
            now=now,
        )
        price = price_at(
            switching=next_tier_id is not None,
            tier_price=tier_price,
            tier_price_effective_at=tier_price_effective_at,
            member_price=member_price,
            at=start,
        )
        chunk.plans.append(
            Plan(
                membership_id,
                member_id,
                creator_id,
                creator_user_id,
                handle,
                pending_account_id,
                tier_id,
                tier_name,
                anchor,
                count,
                start,
                end,
                price,
            )
        )
    return chunk


def who_can_pay(
    plans: list[Plan], *, clock: datetime
) -> tuple[list[Plan], list[tuple[Plan, str]], dict[int, SpendingWallet]]:
    """Lock the members' wallets (id order) and split ``plans`` into those paid now and those
    refused with a reason. Spending limits are those in force at ``clock``, against what was
    spent on ``clock``'s day and month (where the coins are counted): under the wallet lock
    every other spender waits for, so the check and the count are one step."""
    wallets = wallets_lock_for_spending(user_ids=[p.member_id for p in plans])
    limited = set(
        SpendingLimits.objects.filter(user_id__in=list(wallets))
        .exclude(
            daily_limit=None,
            monthly_limit=None,
            daily_limit_next_at=None,
            monthly_limit_next_at=None,
        )
        .values_list("user_id", flat=True)
    )
    spent = spent_today_and_month(user_ids=list(limited), now=clock) if limited else {}
    left = {user_id: w.balance for user_id, w in wallets.items()}
    paid: list[Plan] = []
    unpaid: list[tuple[Plan, str]] = []
    for plan in plans:
        member_id = plan.member_id
        wallet = wallets.get(member_id)
        if wallet is None or left[member_id] < plan.price:
            unpaid.append((plan, "not enough coins"))
            continue
        if wallet.is_frozen:
            unpaid.append((plan, "wallet frozen"))
            continue
        if member_id in limited:
            limits = spending_limits_effective(user_id=member_id, now=clock)
            today, month = spent.get(member_id, (0, 0))
            if own_limit_refusal(limits=limits, today=today, month=month, coins=plan.price):
                unpaid.append((plan, "over your own spending limit"))
                continue
            spent[member_id] = (today + plan.price, month + plan.price)
        left[member_id] -= plan.price
        paid.append(plan)
    return paid, unpaid, wallets


def post(plans: list[Plan], *, wallets: dict[int, SpendingWallet], clock: datetime) -> list[Plan]:
    """The renewals' ledger transactions in one statement; returns the plans whose key was new
    (a key already written means that period was paid: never again)."""
    if not plans:
        return []
    pending: dict[int, int] = {}
    for plan in plans:
        if plan.pending_account_id is None and plan.creator_id not in pending:
            creator = Creator.objects.select_related("user").get(pk=plan.creator_id)
            pending[plan.creator_id] = account_get(
                kind=AccountKind.DIAMONDS_PENDING, user=creator.user
            ).pk
    diamonds: dict[int, int] = {}
    for price in {p.price for p in plans}:
        diamonds[price] = diamonds_for(price)
    written = ledger_spend_bulk(
        kind=TransactionKind.MEMBERSHIP,
        spends=Spends(
            keys=[renewal_key(p.membership_id, p.start) for p in plans],
            wallets=[wallets[p.member_id].account_id for p in plans],
            coins=[p.price for p in plans],
            diamonds=[diamonds[p.price] for p in plans],
            pending=[p.pending_account_id or pending[p.creator_id] for p in plans],
            actors=[p.member_id for p in plans],
            memos=[
                f"Membership renewal: {p.tier_name} of @{p.handle} to {p.end:%Y-%m-%d}"
                for p in plans
            ],
            references=[f"membership:{p.membership_id}" for p in plans],
        ),
        spent=platform_account(AccountKind.COINS_SPENT).pk,
        issuance=platform_account(AccountKind.DIAMOND_ISSUANCE).pk,
        now=clock,
    )
    done = []
    for plan, tx_id in zip(plans, written, strict=True):
        if tx_id is None:
            log.error("membership %s: period %s was already paid", plan.membership_id, plan.start)
            continue
        plan.transaction_id = tx_id
        done.append(plan)
    return done


def _record(plans: list[Plan], *, clock: datetime) -> None:
    """Advance the memberships, write their charge rows and events (one statement), count the
    coins spent on ``clock``'s day (the day ``who_can_pay`` checked) in one upsert, and tell
    subscribed creators' apps."""
    if not plans:
        return
    diamonds = {price: diamonds_for(price) for price in {p.price for p in plans}}
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD,
            {
                "now": clock,
                "ids": [p.membership_id for p in plans],
                "tiers": [p.tier_id for p in plans],
                "prices": [p.price for p in plans],
                "diamonds": [diamonds[p.price] for p in plans],
                "payers": [p.member_id for p in plans],
                "txs": [p.transaction_id for p in plans],
                "anchors": [p.anchor for p in plans],
                "counts": [p.count for p in plans],
                "starts": [p.start for p in plans],
                "ends": [p.end for p in plans],
                "iso": [p.end.isoformat() for p in plans],
            },
        )
        events = dict(cursor.fetchall())
    spending: dict[int, int] = defaultdict(int)
    for p in plans:
        spending[p.member_id] += p.price
    creator_spending_add(coins_by_user=spending, now=clock)
    subscribed = webhook_owners_subscribed(
        user_ids=list({p.creator_user_id for p in plans}), type="membership.renewed"
    )
    told = [p.membership_id for p in plans if p.creator_user_id in subscribed]
    if told:
        for membership in Membership.objects.select_related("member", "creator").filter(
            pk__in=told
        ):
            _webhook(membership, "renewed", event_id=events[membership.pk])


def renew_chunk(*, now: datetime, run, chunk_size: int, one_by_one) -> bool:
    """Renew one chunk of due memberships in one transaction; False when none was due.
    ``one_by_one(ids, unpaid)`` handles the rows that end and those that cannot pay."""
    with transaction.atomic():
        chunk = due_lock(now=now, chunk_size=chunk_size)
        if chunk is None:
            return False
        clock = timezone.now()
        paid, unpaid, wallets = who_can_pay(chunk.plans, clock=clock)
        paid = post(paid, wallets=wallets, clock=clock)
        _record(paid, clock=clock)
        run.renewed += len(paid)
        if chunk.ending or unpaid:
            one_by_one(chunk.ending, unpaid)
        if paid:
            notices_soon()
        return True
