"""Refunds and chargebacks of coins that paid a membership follow CHARGEBACK_POLICY like
gifts: the month's diamonds are traced and clawed back from pending (or absorbed)."""

import pytest
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from gifts.tests.factories import make_creator
from memberships.tests.factories import join, make_tier
from wallets import stripe_gateway as gateway
from wallets.models import Account, AccountKind, ChargebackAllocation, TransactionKind
from wallets.services import account_balance, recharge_create
from wallets.tests.factories import event_payload, post_event

pytestmark = pytest.mark.django_db


def _dispute(recharge, dispute_id, status="needs_response"):
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": gateway.to_minor(recharge.price),
        "currency": str(recharge.price.currency).lower(),
        "charge": "ch_unknown",
        "payment_intent": recharge.payment_intent,
        "status": status,
    }


@pytest.mark.parametrize(
    ("policy", "currency", "pending_after", "absorbed"),
    [
        ("clawback_pending", "USD", 0, 0),
        ("clawback_pending", "EUR", 0, 0),
        ("absorb", "GBP", 600, 600),
    ],
)
def test_a_disputed_recharge_that_paid_a_membership(
    api, settings, policy, currency, pending_after, absorbed
):
    settings.CHARGEBACK_POLICY = policy
    creator = make_creator(f"cb{currency.lower()}")
    tier = make_tier(creator, coins=600)
    viewer = UserFactory()
    recharge = recharge_create(
        user=viewer, currency=currency, coins=1000, payment_method="pm_card_visa"
    )
    join(viewer, creator, tier)
    assert account_balance(creator.pending_account) == 600
    opened = event_payload("charge.dispute.created", _dispute(recharge, f"dp_m_{currency}"))
    response = post_event(api, opened)
    assert response.status_code == 200, response.content
    assert post_event(api, opened).status_code == 200  # redelivered: nothing twice
    allocation = ChargebackAllocation.objects.get()
    assert allocation.gift_transaction.kind == TransactionKind.MEMBERSHIP
    assert allocation.coins == 600
    assert allocation.diamonds_absorbed == absorbed
    assert account_balance(creator.pending_account) == pending_after
    debt = Account.objects.get(kind=AccountKind.COIN_DEBT, user=viewer)
    assert debt.balance == -600
    call_command("verify_ledger")
    won = event_payload("charge.dispute.closed", _dispute(recharge, f"dp_m_{currency}", "won"))
    assert post_event(api, won).status_code == 200
    assert account_balance(creator.pending_account) == 600
    call_command("verify_ledger")
