"""Joining a tier (the first month paid at once, exactly once per client key), switching,
resuming and cancelling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import AgeRestricted, InvalidInput
from gifts.services import diamonds_for
from memberships.models import ChargeKind, EventKind, Membership, MembershipStatus, Tier
from memberships.services.booking import (
    _book,
    _charge_record,
    _charge_renewal,
    _creator_for,
    _event,
    _ledger_key,
    _locked_or_new,
    _replay,
    _start,
    _tier_of,
)
from memberships.services.errors import (
    AlreadyMember,
    MembershipEnded,
    MembershipNotFound,
    SelfMembership,
)
from memberships.services.notices import notices_soon
from wallets.services import wallet_check_can_spend, wallet_get

if TYPE_CHECKING:
    from accounts.models import User


@dataclass
class JoinResult:
    membership: Membership
    charged: bool  # a month was paid by this call (False: a switch, a resume, or a replay)
    replayed: bool = False


@transaction.atomic
def membership_join(
    *, member: User, creator_handle: str, tier_id: int, client_key: str
) -> JoinResult:
    """Join a creator's tier: the first month is debited at once, exactly once per client key.

    Already a member: another tier is a switch at the next renewal; a cancelled (or gifted)
    membership that is still running is resumed without a charge; one in its grace period is
    renewed now. Refused: minors, a frozen wallet, not enough coins, the creator themself.
    """
    key = _ledger_key("membership", member.pk, client_key)
    notices_soon()  # the receipt (or switch notice) is mailed after the commit
    replayed = _replay(key, payer=member)
    if replayed is not None:
        return JoinResult(replayed[0], charged=False, replayed=True)
    if not member.is_adult:
        raise AgeRestricted("You must be 18 or older to join memberships.")
    creator = _creator_for(creator_handle)
    if creator.user_id == member.pk:
        raise SelfMembership()
    tier = _tier_of(creator, tier_id)
    wallet_check_can_spend(wallet=wallet_get(user=member))
    now = timezone.now()
    for attempt in range(2):
        membership = _locked_or_new(member=member, creator=creator, tier=tier, now=now)
        if membership.pk is not None:
            break
        try:
            # Claims the pair; the month is paid below in the same transaction.
            with transaction.atomic():
                _start(membership, tier=tier, now=now, renews=True)
                membership.save(force_insert=True)
        except IntegrityError:
            if attempt:
                raise
            continue  # a concurrent join or gift created it: lock that row instead
        return JoinResult(
            _pay_first_month(membership, tier=tier, member=member, key=key, now=now), True
        )

    if membership.status == MembershipStatus.GRACE:
        # Paying by hand in grace: the overdue month now (on the tier asked for).
        membership.next_tier = None if tier.pk == membership.tier_id else tier
        _charge_renewal(membership, tier=tier, key=key, now=now, strict=True, actor=member)
        return JoinResult(membership, charged=True)
    if membership.is_live:
        changes = []
        if not membership.renews or membership.status == MembershipStatus.CANCELLED:
            membership.status = MembershipStatus.ACTIVE
            membership.renews = True
            membership.cancelled_at = None
            membership.next_attempt_at = membership.current_period_end
            changes.append(EventKind.RESUMED)
        wanted = None if tier.pk == membership.tier_id else tier
        if wanted != membership.next_tier:
            membership.next_tier = wanted
            changes.append(EventKind.SWITCH)
        if not changes:
            # A concurrent call with this very key may have made the membership: replay it.
            replayed = _replay(key, payer=member)
            if replayed is not None:
                return JoinResult(replayed[0], charged=False, replayed=True)
            raise AlreadyMember()
        membership.save()
        for kind in changes:
            _event(membership, kind, actor=member, next_tier=tier.pk)
        return JoinResult(membership, charged=False)
    # Ended (lapsed, or cancelled and run out): a new first month.
    _start(membership, tier=tier, now=now, renews=True)
    return JoinResult(
        _pay_first_month(membership, tier=tier, member=member, key=key, now=now), True
    )


def _pay_first_month(
    membership: Membership, *, tier: Tier, member: User, key: str, now: datetime
) -> Membership:
    coins = tier.coins_per_month
    result = _book(
        payer=member,
        creator=membership.creator,
        coins=coins,
        diamonds=diamonds_for(coins),
        key=key,
        memo=f"Membership: {tier.name} of @{membership.creator.handle}, 1 month",
        reference=f"membership:{membership.pk}" if membership.pk else "",
    )
    if not result.created:  # a concurrent call with this key won: never pay twice
        raise InvalidInput("This client key was already used.")
    membership.save()
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.JOIN,
        payer=member,
        journal=result.transaction,
        coins=coins,
        period_start=membership.anchor,
        period_end=membership.current_period_end,
    )
    _event(membership, EventKind.JOINED, actor=member, coins=coins, tier_name=tier.name)
    return membership


@transaction.atomic
def membership_cancel(*, member: User, membership_id) -> Membership:
    """Cancel: no more renewals; the perks run to the end of the paid period. Idempotent.
    Another member's membership is 404."""
    membership = (
        Membership.objects.select_for_update()
        .filter(pk=membership_id, member=member)
        .select_related("creator", "tier")
        .first()
        if isinstance(membership_id, int)
        else None
    )
    if membership is None:
        raise MembershipNotFound()
    notices_soon()
    if membership.status == MembershipStatus.CANCELLED:
        return membership
    if membership.status == MembershipStatus.LAPSED:
        raise MembershipEnded()
    membership.status = MembershipStatus.CANCELLED
    membership.renews = False
    membership.next_tier = None
    membership.cancelled_at = timezone.now()
    membership.save()
    _event(
        membership,
        EventKind.CANCELLED,
        actor=member,
        runs_to=membership.current_period_end.isoformat(),
    )
    return membership
