import uuid

import pytest

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator


@pytest.fixture
def star(db):
    return make_creator("star")


@pytest.fixture
def gifts(db):
    """A small and a big gift: 10 coins (never pinned alone) and 1,000 coins (tier 3)."""
    return {
        "rose": GiftFactory(slug="rose", name="Rose", coins=10),
        "crown": GiftFactory(slug="crown", name="Crown", coins=1000),
    }


@pytest.fixture
def fan(db):
    return fund(UserFactory(username="fan"), 1_000_000)


@pytest.fixture
def send(gifts):
    def _send(sender, creator, gift="crown", *, quantity=1, message="", live_id="live1"):
        return gift_send(
            sender=sender,
            creator_handle=creator.handle,
            gift_slug=gift,
            quantity=quantity,
            live_id=live_id,
            message=message,
            client_key=str(uuid.uuid4()),
        )

    return _send
