"""A creator's tiers: create and edit (a price change is announced to the members)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from config.errors import InvalidInput
from config.keyset import keyset_pages
from creators.models import Creator
from memberships.models import (
    RENEWING_STATUSES,
    TIERS_MAX,
    EventKind,
    Membership,
    MembershipEvent,
    Tier,
)
from memberships.services.errors import TierLimit
from memberships.services.notices import notices_soon

if TYPE_CHECKING:
    from accounts.models import User


NAME_MAX = 60
PERKS_MAX = 500
# A price change's notices: members read and written a page at a time.
NOTICE_PAGE = 2000


def _clean_tier_fields(*, name=None, coins_per_month=None, perks=None) -> dict:
    values: dict = {}
    if name is not None:
        name = " ".join(str(name).split())
        if not 1 <= len(name) <= NAME_MAX:
            raise InvalidInput(
                f"A tier name is 1 to {NAME_MAX} characters.",
                fields={"name": [f"1 to {NAME_MAX} characters."]},
            )
        values["name"] = name
    if coins_per_month is not None:
        top = settings.MEMBERSHIP_TIER_MAX_COINS
        if (
            isinstance(coins_per_month, bool)
            or not isinstance(coins_per_month, int)
            or not 1 <= coins_per_month <= top
        ):
            raise InvalidInput(
                f"The price is a whole number of coins from 1 to {top:,}.",
                fields={"coins_per_month": [f"A whole number from 1 to {top}."]},
            )
        values["coins_per_month"] = coins_per_month
    if perks is not None:
        perks = str(perks).strip()
        if len(perks) > PERKS_MAX:
            raise InvalidInput(
                f"Perks are {PERKS_MAX} characters at most.",
                fields={"perks": [f"Ensure this field has no more than {PERKS_MAX} characters."]},
            )
        values["perks"] = perks
    return values


@transaction.atomic
def tier_create(*, creator: Creator, name: str, coins_per_month: int, perks: str = "") -> Tier:
    """Add a tier (a creator has three at most: ``position`` 1..3 is unique and checked)."""
    values = _clean_tier_fields(name=name, coins_per_month=coins_per_month, perks=perks or "")
    taken = set(Tier.objects.filter(creator=creator).values_list("position", flat=True))
    free = [p for p in range(1, TIERS_MAX + 1) if p not in taken]
    if not free:
        raise TierLimit()
    try:
        with transaction.atomic():
            tier = Tier.objects.create(creator=creator, position=free[0], **values)
    except IntegrityError as exc:  # a concurrent create took the position
        raise TierLimit("Another tier was added at the same time; try again.") from exc
    MembershipEvent.objects.create(
        tier=tier, kind=EventKind.TIER_CHANGED, actor=creator.user, detail={"created": values}
    )
    return tier


@transaction.atomic
def tier_update(
    *,
    tier: Tier,
    actor: User,
    name: str | None = None,
    coins_per_month: int | None = None,
    perks: str | None = None,
) -> Tier:
    """Edit a tier. A new price applies to new members at once and to existing members from
    their first renewal ``MEMBERSHIP_PRICE_NOTICE_DAYS`` or more ahead; each live member gets
    a notice now."""
    values = _clean_tier_fields(name=name, coins_per_month=coins_per_month, perks=perks)
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    before = {"name": tier.name, "coins_per_month": tier.coins_per_month, "perks": tier.perks}
    old_price = tier.coins_per_month
    for field, value in values.items():
        setattr(tier, field, value)
    price_changed = tier.coins_per_month != old_price
    now = timezone.now()
    if price_changed:
        tier.price_effective_at = now + timedelta(days=settings.MEMBERSHIP_PRICE_NOTICE_DAYS)
    tier.save()
    MembershipEvent.objects.create(
        tier=tier,
        kind=EventKind.TIER_CHANGED,
        actor=actor,
        detail={"before": before, "after": values},
    )
    audit_record(
        actor=actor, action="membership_tier_update", obj=tier, before=before, after=values
    )
    if price_changed:
        notices_soon()
        effective = tier.price_effective_at
        members = Membership.objects.filter(
            Q(tier=tier) | Q(next_tier=tier), status__in=RENEWING_STATUSES, renews=True
        ).values_list("pk", flat=True)
        message = (
            f"{tier.name} changes from {old_price:,} to {tier.coins_per_month:,} "
            f"coins a month from your first renewal on or after "
            f"{effective:%Y-%m-%d %H:%M} UTC."
        )
        detail = {
            "old": old_price,
            "new": tier.coins_per_month,
            "effective_at": effective.isoformat() if effective else None,
        }
        # A page of members at a time (keyset: no server-side cursor, and memory bounded
        # however many members a tier has).
        for page in keyset_pages(members, size=NOTICE_PAGE, key=lambda pk: (pk,)):
            MembershipEvent.objects.bulk_create(
                [
                    MembershipEvent(
                        membership_id=membership_id,
                        tier=tier,
                        kind=EventKind.PRICE_CHANGE,
                        actor=actor,
                        notify=True,
                        message=message,
                        detail=detail,
                        created_at=now,
                    )
                    for membership_id in page
                ]
            )
    return tier
