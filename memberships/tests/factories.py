import uuid

from memberships.models import Membership, MembershipCharge
from memberships.services import add_months, membership_join, tier_create


def make_tier(creator, name: str = "Fan club", coins: int = 100, perks: str = "A badge"):
    return tier_create(creator=creator, name=name, coins_per_month=coins, perks=perks)


def join(member, creator, tier, key: str | None = None):
    return membership_join(
        member=member,
        creator_handle=creator.handle,
        tier_id=tier.pk,
        client_key=key or str(uuid.uuid4()),
    )


def make_due(membership, *, end):
    """Move ``membership``'s paid month (and its one charge) back so that it ends at ``end``."""
    anchor = add_months(end, -1)
    Membership.objects.filter(pk=membership.pk).update(
        anchor=anchor, current_period_end=end, next_attempt_at=end
    )
    MembershipCharge.objects.filter(membership=membership).update(
        period_start=anchor, period_end=end
    )
