import factory

from accounts.tests.factories import UserFactory
from creators.services import creator_create
from gifts.models import Gift
from wallets.services import wallet_adjust


class GiftFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gift
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Gift {n}")
    slug = factory.Sequence(lambda n: f"gift-{n}")
    coins = 10


def make_creator(handle: str = "star", **user_fields):
    user = UserFactory.create(**user_fields)
    return creator_create(user=user, handle=handle, display_name=handle.title())


def fund(user, coins: int):
    wallet_adjust(user=user, coins=coins, reason="test funds", actor=None)
    return user
