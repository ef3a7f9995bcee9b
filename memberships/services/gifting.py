"""Gift memberships: one debit buys a month for each named viewer (Twitch's gift subs)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import AgeRestricted, InvalidInput
from creators.models import Creator
from gifts.services import diamonds_for
from memberships.models import ChargeKind, EventKind, Membership, MembershipStatus, Tier
from memberships.services.booking import (
    _book,
    _charge_record,
    _creator_for,
    _event,
    _ledger_key,
    _locked_or_new,
    _replay,
    _start,
    _tier_of,
)
from memberships.services.errors import SelfMembership, UnknownRecipient
from memberships.services.notices import notices_soon
from memberships.services.periods import add_months
from wallets.services import wallet_check_can_spend, wallet_get


@transaction.atomic
def membership_gift(
    *, payer, creator_handle: str, tier_id: int, recipients: list, client_key: str
) -> list[Membership]:
    """Buy one month of ``tier`` for each named viewer, in one debit, exactly once per key.

    A recipient with a running membership gets the month added to it (their tier stays);
    anyone else gets a new membership that does not renew unless they choose to.
    """
    key = _ledger_key("membership-gift", payer.pk, client_key)
    notices_soon()  # the recipients' notices are mailed after the commit
    replayed = _replay(key, payer=payer)
    if replayed is not None:
        return replayed
    if not payer.is_adult:
        raise AgeRestricted("You must be 18 or older to gift memberships.")
    creator = _creator_for(creator_handle)
    if creator.user_id == payer.pk:
        raise SelfMembership("You cannot gift memberships of your own channel.")
    names = _clean_recipients(recipients)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    unknown = [n for n in names if n not in users or not users[n].is_active]
    if unknown:
        raise UnknownRecipient(
            f"No such viewer: {', '.join(unknown)}.",
            fields={"gift_to": [f"No such viewer: {name}" for name in unknown]},
        )
    for bad, why in ((payer.pk, "yourself (join instead)"), (creator.user_id, "the creator")):
        if any(u.pk == bad for u in users.values()):
            raise InvalidInput(
                f"A gift membership cannot go to {why}.", fields={"gift_to": [f"Not {why}."]}
            )
    tier = _tier_of(creator, tier_id)
    wallet_check_can_spend(wallet=wallet_get(user=payer))
    price = tier.coins_per_month
    coins = price * len(names)
    # The debit first: it claims the key, so a concurrent duplicate waits here and replays.
    result = _book(
        payer=payer,
        creator=creator,
        coins=coins,
        diamonds=diamonds_for(price) * len(names),
        key=key,
        memo=f"Gift memberships: {len(names)} x {tier.name} of @{creator.handle}",
        reference=f"creator:{creator.pk}",
    )
    if not result.created:
        return _replay(key, payer=payer) or []
    given = []
    # Rows locked in member-id order: two gifts to overlapping viewers never deadlock.
    for recipient in sorted(users.values(), key=lambda u: u.pk):
        given.append(
            _gift_one(
                recipient, creator=creator, tier=tier, payer=payer, journal=result.transaction
            )
        )
    by_member = {m.member_id: m for m in given}
    return [by_member[users[name].pk] for name in names]


def _clean_recipients(recipients) -> list[str]:
    top = settings.MEMBERSHIP_GIFT_MAX
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and r.strip() for r in recipients)
    ):
        raise InvalidInput(
            "gift_to is a list of usernames.", fields={"gift_to": ["A list of usernames."]}
        )
    names = [r.strip() for r in recipients]
    if len(names) > top:
        raise InvalidInput(
            f"At most {top} recipients per gift.",
            fields={"gift_to": [f"Ensure this list has no more than {top} elements."]},
        )
    if len({n.casefold() for n in names}) != len(names):
        raise InvalidInput(
            "Each recipient once, please.", fields={"gift_to": ["Duplicate usernames."]}
        )
    return names


def _gift_one(recipient, *, creator: Creator, tier: Tier, payer, journal) -> Membership:
    now = timezone.now()
    price = tier.coins_per_month
    for attempt in range(2):
        membership = _locked_or_new(member=recipient, creator=creator, tier=tier, now=now)
        if membership.pk is None:
            _start(membership, tier=tier, now=now, renews=False)
            try:
                with transaction.atomic():
                    membership.save(force_insert=True)
            except IntegrityError:
                if attempt:
                    raise
                continue
            start = membership.anchor
            break
        if membership.is_live:
            start = membership.current_period_end
            membership.period_count += 1
            membership.current_period_end = add_months(membership.anchor, membership.period_count)
            membership.months += 1
            if membership.status == MembershipStatus.GRACE:
                # The gifted month pays the overdue one: back to active.
                membership.status = MembershipStatus.ACTIVE
                membership.grace_until = None
            if membership.status == MembershipStatus.ACTIVE:
                membership.next_attempt_at = membership.current_period_end
        else:
            _start(membership, tier=tier, now=now, renews=False)
            start = membership.anchor
        membership.save()
        break
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.GIFT,
        payer=payer,
        journal=journal,
        coins=price,
        period_start=start,
        period_end=membership.current_period_end,
    )
    _event(
        membership,
        EventKind.GIFTED,
        actor=payer,
        message=f"{payer.username} gifted you a month of {tier.name} (@{creator.handle}).",
        coins=price,
        gifted_by=payer.username,
    )
    return membership
