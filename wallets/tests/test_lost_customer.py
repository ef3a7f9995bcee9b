"""Issue 21 item 1: a Stripe customer that Stripe no longer knows (deleted in the dashboard,
or `make run`'s localstripe started afresh) is replaced; the card is never blamed."""

import pytest

from tests.helpers import idem
from wallets.models import RechargeStatus, StripeCustomer
from wallets.services import recharge_create, wallet_get


def lose_the_customer(user) -> str:
    # What a restart from scratch leaves: our row names a customer the server never saw.
    StripeCustomer.objects.filter(user=user).update(customer_id=f"cus_lost{user.pk}x")
    return f"cus_lost{user.pk}x"


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
def test_buying_again_after_stripe_lost_the_customer(user, user_api, currency):
    recharge_create(user=user, currency=currency, coins=100, payment_method="pm_card_visa")
    lost = lose_the_customer(user)

    response = user_api.post(
        "/api/v1/recharges/",
        {"coins": 200, "currency": currency, "payment_method": "pm_card_visa"},
        format="json",
        **idem(),
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == RechargeStatus.SUCCEEDED
    assert wallet_get(user=user).balance == 300
    customer = StripeCustomer.objects.get(user=user)
    assert customer.customer_id != lost
    assert customer.customer_id.startswith("cus_")


@pytest.mark.django_db
def test_the_portal_flow_without_a_payment_method_also_recovers(user):
    recharge_create(user=user, currency="USD", coins=100, payment_method="pm_card_visa")
    lost = lose_the_customer(user)
    recharge = recharge_create(user=user, currency="USD", coins=100)
    assert recharge.status == RechargeStatus.PENDING
    assert recharge.payment_intent
    assert StripeCustomer.objects.get(user=user).customer_id != lost


@pytest.mark.django_db
def test_an_unusable_card_with_a_good_customer_is_still_the_cards_fault(user, user_api):
    recharge_create(user=user, currency="USD", coins=100, payment_method="pm_card_visa")
    kept = StripeCustomer.objects.get(user=user).customer_id
    response = user_api.post(
        "/api/v1/recharges/",
        {"coins": 200, "currency": "USD", "payment_method": "pm_no_such_method"},
        format="json",
        **idem(),
    )
    assert response.status_code == 400
    assert "payment_method" in response.json()["error"]["fields"]
    assert StripeCustomer.objects.get(user=user).customer_id == kept
    assert wallet_get(user=user).balance == 100
