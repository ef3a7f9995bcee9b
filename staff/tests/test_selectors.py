from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from staff import selectors
from wallets.models import Discrepancy
from wallets.services import recharge_create, wallet_freeze

pytestmark = pytest.mark.django_db


def test_dashboard_figures_come_from_recharges_gifts_and_balances():
    buyer = UserFactory()
    recharge_create(user=buyer, currency="USD", coins=1000, payment_method="pm_card_visa")
    recharge_create(user=buyer, currency="EUR", coins=500, payment_method="pm_card_visa")
    pending = recharge_create(user=buyer, currency="USD", coins=700)  # never paid: not revenue
    assert pending.status == "pending"
    make_creator("dashstar")
    rose = GiftFactory(slug="dash-rose", name="Dash rose", coins=10)
    heart = GiftFactory(slug="dash-heart", name="Dash heart", coins=50)
    fan = fund(UserFactory(), 1000)
    gift_send(
        sender=fan, creator_handle="dashstar", gift_slug=rose.slug, quantity=3, client_key="a"
    )
    gift_send(sender=fan, creator_handle="dashstar", gift_slug=heart.slug, client_key="b")
    wallet_freeze(user=fan, reason="test")
    Discrepancy.objects.create(kind="k", object_type="t", object_id="1")

    data = selectors.dashboard()

    today = data["revenue_table"][0]
    assert data["currencies"] == ["EUR", "USD"]
    assert today["coins_sold"] == 1500
    assert today["recharges"] == 2
    assert all(v > Decimal(0) for v in today["by_currency"])
    assert data["gift_table"][0] == {"label": "today", "count": 2, "coins": 80}
    assert [g["name"] for g in data["top_gifts"]] == ["Dash heart", "Dash rose"]
    assert data["coins_outstanding"] == 1500 + 1000 - 80
    assert data["diamonds_pending"] == 80  # 1 coin = 1 diamond by default
    assert data["frozen_wallets"] == 1
    assert data["discrepancies_open"] == 1
    assert data["payouts"] == {
        "due": {"count": 0, "diamonds": 0, "amount": Decimal(0)},
        "awaiting_approval": {"count": 0, "diamonds": 0, "amount": Decimal(0)},
    }
    chart = data["gifts_chart"]
    assert len(chart.bars) == 30
    assert chart.bars[-1]["value"] == 80
    assert chart.maximum == 80
    assert chart.bars[0]["h"] == 0


def test_dashboard_on_an_empty_platform():
    data = selectors.dashboard()
    assert data["coins_outstanding"] == 0
    assert data["top_gifts"] == []
    assert data["gifts_chart"].maximum == 0
