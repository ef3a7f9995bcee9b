"""What joining, gifting and renewing share: booking a month in the ledger, its charge row,
locking the (member, creator) row, and the event (with its webhook) that tells about it.

Money: every month paid is one ``membership`` ledger transaction booked like a gift (the
payer's wallet → coins spent; diamond issuance → the creator's pending diamonds, held like
gift earnings) plus one ``MembershipCharge`` row per membership month it paid. A gift of N
months is one transaction with N charge rows.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from config.errors import InsufficientFunds, InvalidInput
from creators.models import Creator
from creators.selectors import creator_find
from gifts.services import CreatorCannotReceive, CreatorNotFound, diamonds_for
from gifts.spending import creator_spending_add, creator_spending_check
from memberships.models import (
    MAIL_KINDS,
    ChargeKind,
    EventKind,
    Membership,
    MembershipCharge,
    MembershipEvent,
    MembershipStatus,
    Tier,
)
from memberships.services.errors import TierNotFound
from memberships.services.periods import add_months, period_after, renewal_price
from notifications.webhooks import webhook_event_emit
from wallets.models import Account, AccountKind, LedgerTransaction, TransactionKind
from wallets.services import (
    Posting,
    account_get,
    ledger_post,
    platform_account,
    wallet_check_can_spend,
    wallet_get,
)

if TYPE_CHECKING:
    from accounts.models import User


def _ledger_key(prefix: str, user_id: int, client_key: str) -> str:
    client_key = (client_key or "").strip()
    if not client_key:
        raise InvalidInput("A client key is required.", fields={"client_key": ["Required."]})
    if len(client_key) > 180:
        client_key = "sha256-" + hashlib.sha256(client_key.encode()).hexdigest()
    return f"{prefix}:{user_id}:{client_key}"


def _book(
    *, payer, creator: Creator, coins: int, diamonds: int, key: str, memo: str, reference: str
):
    """One membership transaction: coins out of the payer's wallet, diamonds into the
    creator's pending earnings (same hold as gifts). It counts towards the payer's own daily
    and monthly spending limits like a gift. Raises InsufficientFunds, SpendingLimitExceeded."""
    wallet = wallet_get(user=payer)
    pending = creator.pending_account or account_get(
        kind=AccountKind.DIAMONDS_PENDING, user=creator.user
    )
    result = ledger_post(
        kind=TransactionKind.MEMBERSHIP,
        idempotency_key=key,
        postings=[
            Posting(wallet, -coins),
            Posting(platform_account(AccountKind.COINS_SPENT), coins),
            Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), -diamonds),
            Posting(pending, diamonds),
        ],
        actor=payer,
        memo=memo,
        reference=reference,
    )
    if result.created:
        # Checked after the debit: it holds the payer's wallet row, so two spends by one
        # person are counted one after the other (a refusal rolls the debit back).
        creator_spending_check(user_id=payer.pk, coins=coins)
        creator_spending_add(coins_by_user={payer.pk: coins})
    return result


def period_next(
    membership: Membership, *, now: datetime
) -> tuple[datetime, int, datetime, datetime]:
    """``(anchor, period count, start, end)`` of the period a renewal at ``now`` pays
    (``periods.period_after``)."""
    return period_after(
        status=membership.status,
        anchor=membership.anchor,
        period_count=membership.period_count,
        current_period_end=membership.current_period_end,
        now=now,
    )


def renewal_key(membership_id: int, start: datetime) -> str:
    return f"membership-renewal:{membership_id}:{start.isoformat()}"


def _charge_record(
    *,
    membership: Membership,
    tier: Tier,
    kind: str,
    payer,
    journal: LedgerTransaction,
    coins: int,
    period_start: datetime,
    period_end: datetime,
) -> MembershipCharge:
    return MembershipCharge.objects.create(
        membership=membership,
        tier=tier,
        kind=kind,
        payer=payer,
        transaction=journal,
        coins=coins,
        diamonds=diamonds_for(coins),
        period_start=period_start,
        period_end=period_end,
        created_at=journal.created_at,
    )


def _creator_for(handle: str) -> Creator:
    creator = creator_find(handle=handle)
    if creator is None or not creator.is_active:
        raise CreatorNotFound()
    if not creator.can_receive_gifts:
        raise CreatorCannotReceive("This creator cannot take members right now.")
    return creator


def _tier_of(creator: Creator, tier_id) -> Tier:
    if isinstance(tier_id, bool) or not isinstance(tier_id, int) or tier_id < 1:
        raise InvalidInput("tier is a tier id.", fields={"tier": ["A valid tier id is required."]})
    tier = Tier.objects.filter(pk=tier_id, creator=creator).first()
    if tier is None:
        raise TierNotFound()
    return tier


def _locked(*, member_id: int, creator_id: int) -> Membership | None:
    return (
        Membership.objects.select_for_update()
        .filter(member_id=member_id, creator_id=creator_id)
        .first()
    )


def _start(membership: Membership, *, tier: Tier, now: datetime, renews: bool) -> None:
    """(Re)start a membership that is not live: a fresh period from now."""
    membership.tier = tier
    membership.next_tier = None
    membership.status = MembershipStatus.ACTIVE
    membership.renews = renews
    membership.coins_per_month = tier.coins_per_month
    membership.anchor = now
    membership.period_count = 1
    membership.current_period_end = add_months(now, 1)
    membership.next_attempt_at = membership.current_period_end
    membership.grace_until = None
    membership.cancelled_at = None
    membership.months += 1
    if membership.pk is None:
        membership.started_at = now


def _locked_or_new(*, member: User, creator: Creator, tier: Tier, now: datetime):
    """The (member, creator) membership row, locked; a new unsaved one when there is none.

    A new row is inserted by the caller; a concurrent insert of the same pair makes that
    fail on the unique constraint, and the caller retries with the row then found here.
    """
    membership = _locked(member_id=member.pk, creator_id=creator.pk)
    if membership is not None:
        return membership
    return Membership(
        member=member,
        creator=creator,
        tier=tier,
        coins_per_month=tier.coins_per_month,
        anchor=now,
        current_period_end=add_months(now, 1),
        next_attempt_at=add_months(now, 1),
        months=0,
    )


# Membership events a creator's apps hear about (notifications.webhooks).
WEBHOOK_TYPES = {
    EventKind.JOINED: "membership.started",
    EventKind.RENEWED: "membership.renewed",
    EventKind.GRACE: "membership.grace",
    EventKind.LAPSED: "membership.lapsed",
    EventKind.CANCELLED: "membership.cancelled",
}


def _webhook(membership: Membership, kind: str, *, event_id: int) -> None:
    """The creator's apps hear about it (stored only if they subscribed)."""
    webhook_event_emit(
        user_id=membership.creator.user_id,
        type=WEBHOOK_TYPES[EventKind(kind)],
        key=f"membership:{event_id}",
        data={
            "membership": membership.pk,
            "member": membership.member.username,
            "tier": membership.tier_id,
            "status": str(membership.status),
            "current_period_end": membership.current_period_end,
            "months": membership.months,
        },
    )


def _event(
    membership: Membership, kind: str, *, actor: User | None = None, message: str = "", **detail
):
    event = MembershipEvent.objects.create(
        membership=membership,
        tier_id=membership.tier_id,
        kind=kind,
        actor=actor,
        message=message[:500],
        detail=detail,
        notify=kind in MAIL_KINDS,
    )
    if kind in WEBHOOK_TYPES:
        _webhook(membership, kind, event_id=event.pk)
    return event


def _replay(key: str, *, payer) -> list[Membership] | None:
    journal = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if journal is None:
        return None
    charges = list(
        MembershipCharge.objects.filter(transaction=journal, payer=payer)
        .select_related("membership")
        .order_by("membership__member_id")
    )
    if not charges:
        raise InvalidInput("This client key was already used for something else.")
    return [c.membership for c in charges]


def _charge_renewal(
    membership: Membership,
    *,
    tier: Tier,
    key: str | None,
    now: datetime,
    strict: bool,
    actor: User | None = None,
) -> bool:
    """Pay the next period of a locked membership; True when paid.

    The period runs on from the last one (a payment in grace covers the days since it was
    due); one found more than the grace period late (the renewal did not run) starts now.
    ``strict`` raises the refusal (a member paying by hand); otherwise False is returned and
    the caller's savepoint is rolled back.
    """
    anchor, count, start, end = period_next(membership, now=now)
    price = renewal_price(membership=membership, tier=tier, at=start)
    member_id = membership.member_id
    wallet = Account.objects.filter(kind=AccountKind.WALLET, user_id=member_id).first()
    if wallet is None or wallet.is_frozen or wallet.balance < price:
        if strict:
            if wallet is not None:
                wallet_check_can_spend(wallet=wallet)
            raise InsufficientFunds()
        return False
    result = _book(
        payer=membership.member,
        creator=membership.creator,
        coins=price,
        diamonds=diamonds_for(price),
        key=key or renewal_key(membership.pk, start),
        memo=f"Membership renewal: {tier.name} of @{membership.creator.handle} to {end:%Y-%m-%d}",
        reference=f"membership:{membership.pk}",
    )
    if not result.created:
        raise InvalidInput("This period was already paid.")
    membership.tier = tier
    membership.next_tier = None
    membership.coins_per_month = price
    membership.status = MembershipStatus.ACTIVE
    membership.grace_until = None
    membership.anchor, membership.period_count = anchor, count
    membership.current_period_end = end
    membership.next_attempt_at = end
    membership.months += 1
    membership.save()
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.RENEWAL,
        payer=membership.member,
        journal=result.transaction,
        coins=price,
        period_start=start,
        period_end=end,
    )
    _event(membership, EventKind.RENEWED, actor=actor, coins=price, period_end=end.isoformat())
    return True
