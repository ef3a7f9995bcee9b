"""A crash between Stripe's confirm and our commit: the customer paid, our rows are gone.

Found by ``make chaos`` (SIGKILLed web workers, PostgreSQL restarts mid-recharge): the
PaymentIntent succeeded at Stripe but the Recharge (and on a first purchase the StripeCustomer)
rolled back with the request. Reconciliation rebuilds the recharge from the PaymentIntent's
metadata and credits it exactly once.
"""

import pytest
from djmoney.money import Money

from accounts.tests.factories import UserFactory
from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeStatus, StripeCustomer
from wallets.services import payments_reconcile, wallet_get


def _paid_intent_lost_to_a_crash(user, *, coins=700, customer_id=None):
    customer_id = customer_id or gateway.customer_create(
        user_id=user.pk, email=user.email, username=user.username
    )
    intent = gateway.payment_intent_create(
        amount=Money("10.01", "USD"),
        customer_id=customer_id,
        recharge_id=987654321,  # the rolled-back row's id
        user_id=user.pk,
        payment_method="pm_card_visa",
        coins=coins,
    )
    intent = gateway.payment_intent_confirm(payment_intent_id=intent.id, recharge_id=987654321)
    assert intent.status == "succeeded"
    return intent.id


@pytest.mark.django_db
def test_reconcile_credits_a_paid_intent_whose_recharge_was_lost_once():
    user = UserFactory()
    pi = _paid_intent_lost_to_a_crash(user)
    assert not Recharge.objects.filter(payment_intent=pi).exists()

    payments_reconcile()
    payments_reconcile()

    recharge = Recharge.objects.get(payment_intent=pi)
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.coins == 700 and recharge.user == user
    assert recharge.price == Money("10.01", "USD")
    assert wallet_get(user=user).balance == 700


@pytest.mark.django_db
def test_reconcile_does_not_hand_a_payment_to_a_user_whose_customer_differs():
    payer = UserFactory()
    other = UserFactory()
    StripeCustomer.objects.create(user=other, customer_id="cus_someone_else")
    customer_id = gateway.customer_create(
        user_id=payer.pk, email=payer.email, username=payer.username
    )
    # Metadata naming ``other``, paid by ``payer``'s customer: never credited to ``other``.
    pi = _paid_intent_lost_to_a_crash(other, customer_id=customer_id)

    payments_reconcile()

    assert not Recharge.objects.filter(payment_intent=pi).exists()
    assert wallet_get(user=other).balance == 0
