"""Demo memberships: two tiers on the demo creator, the demo viewer and a fan as members,
one gifted month. Idempotent (fixed client keys replay)."""

from django.contrib.auth import get_user_model

from creators.models import Creator
from memberships.models import Tier
from memberships.services import membership_gift, membership_join, tier_create

TIERS = [
    ("Fan club", 100, "A member badge beside your name in chat and on the overlay"),
    ("Super fan", 500, "Everything in Fan club, plus a shout-out every month"),
]


def seed(out) -> None:
    creator = Creator.objects.filter(handle="demo").first()
    if creator is None:
        return
    tiers = {t.name: t for t in Tier.objects.filter(creator=creator)}
    for name, coins, perks in TIERS:
        if name not in tiers:
            tiers[name] = tier_create(
                creator=creator, name=name, coins_per_month=coins, perks=perks
            )
    User = get_user_model()
    for username, tier_name in (("viewer", "Fan club"), ("mia_fan", "Super fan")):
        member = User.objects.filter(username=username).first()
        if member is not None and member.is_adult:
            membership_join(
                member=member,
                creator_handle="demo",
                tier_id=tiers[tier_name].pk,
                client_key=f"demo-membership-{username}",
            )
    gifter = User.objects.filter(username="mia_fan").first()
    if gifter is not None and User.objects.filter(username="leo_live").exists():
        membership_gift(
            payer=gifter,
            creator_handle="demo",
            tier_id=tiers["Fan club"].pk,
            recipients=["leo_live"],
            client_key="demo-gift-membership",
        )
    out.append("2 membership tiers on /creators/demo/ (members: viewer, mia_fan, leo_live)")
