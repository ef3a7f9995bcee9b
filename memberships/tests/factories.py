import uuid

from memberships.services import membership_join, tier_create


def make_tier(creator, name: str = "Fan club", coins: int = 100, perks: str = "A badge"):
    return tier_create(creator=creator, name=name, coins_per_month=coins, perks=perks)


def join(member, creator, tier, key: str | None = None):
    return membership_join(
        member=member,
        creator_handle=creator.handle,
        tier_id=tier.pk,
        client_key=key or str(uuid.uuid4()),
    )
