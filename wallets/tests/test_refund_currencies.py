"""Refunds and disputes of purchases in every currency we sell in (issue #14, item 1).

Each path runs in USD, EUR and GBP against localstripe: staff refunds, refunds made in the
Stripe dashboard (a signed ``charge.refunded`` event, and reconciliation), disputes opened,
lost and won (signed events: localstripe has no disputes), the viewer's own refund, and the
purchases page. A refund's money is always in the purchase's currency (a CHECK holds it).
"""

import json
import logging
import uuid

import pytest
from django.db import IntegrityError, transaction
from djmoney.money import Money

from accounts.tests.factories import UserFactory
from tests.helpers import client_for, idem
from wallets import stripe_gateway as gateway
from wallets.ledger_checks import run_checks
from wallets.models import (
    Account,
    AccountKind,
    Discrepancy,
    LedgerTransaction,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    StripeEvent,
    recharge_row_new,
)
from wallets.services import (
    payments_reconcile,
    recharge_create,
    recharge_refund,
    wallet_adjust,
)
from wallets.services import webhooks as webhook_services
from wallets.tests.factories import event_payload, post_event

CURRENCIES = ["USD", "EUR", "GBP"]
# 1,000 coins at the custom unit prices (settings.COIN_UNIT_PRICE).
PRICE_OF_1000 = {"USD": "14.30", "EUR": "13.30", "GBP": "11.50"}


def failures():
    return [(name, problems) for name, problems in run_checks() if problems]


def balances(user) -> tuple[int, int]:
    wallet = Account.objects.get(kind=AccountKind.WALLET, user=user)
    debt = Account.objects.get(kind=AccountKind.COIN_DEBT, user=user)
    return wallet.balance, debt.balance


@pytest.fixture
def payer(db):
    # Reconciliation sees every PaymentIntent in the shared localstripe: a unique name keeps
    # other test processes' payments (same user ids) from passing for ours.
    return UserFactory(username=f"payer-{uuid.uuid4().hex[:16]}")


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


def paid(user, currency: str, coins: int = 1000) -> Recharge:
    recharge = recharge_create(
        user=user, currency=currency, coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.price == Money(PRICE_OF_1000[currency], currency) or coins != 1000
    assert recharge.amount_refunded == Money(0, currency)
    return recharge


def dispute(recharge, *, status="needs_response", dispute_id=None, amount=None) -> dict:
    return {
        "id": dispute_id or f"dp_{uuid.uuid4().hex[:16]}",
        "object": "dispute",
        "amount": gateway.to_minor(recharge.price) if amount is None else amount,
        "currency": str(recharge.price.currency).lower(),
        "charge": "ch_unknown",
        "payment_intent": recharge.payment_intent,
        "status": status,
        "reason": "fraudulent",
    }


def test_amount_refunded_cannot_be_in_another_currency_than_the_purchase(payer):
    recharge = recharge_row_new(user=payer, coins=100, price=Money("1.33", "EUR"))
    assert recharge.amount_refunded == Money(0, "EUR")
    with pytest.raises(IntegrityError), transaction.atomic():
        Recharge.objects.filter(pk=recharge.pk).update(amount_refunded_currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        Recharge.objects.create(user=payer, coins=100, price=Money("1.33", "GBP"))  # USD default
    with pytest.raises(IntegrityError), transaction.atomic():
        Recharge.objects.filter(pk=recharge.pk).update(amount_refunded=Money("1.34", "EUR"))


@pytest.mark.parametrize("currency", CURRENCIES)
def test_staff_refunds_partial_then_full(payer, staff, currency):
    recharge = paid(payer, currency)
    first = recharge_refund(
        recharge=recharge, coins=250, reason="partial", actor=staff, idempotency_key="p1"
    )
    assert str(first.amount.currency) == currency
    assert first.coins == 250
    price = recharge.price
    rest = recharge_refund(recharge=recharge, reason="the rest", actor=staff)
    assert rest.coins == 750
    assert first.amount + rest.amount == price
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.amount_refunded == price
    assert recharge.coins_refunded == 1000
    assert recharge.payment_intent
    stripe_refunds = gateway.refunds_for_payment_intent(recharge.payment_intent)
    assert sorted(r.amount for r in stripe_refunds) == sorted(
        gateway.to_minor(r.amount) for r in (first, rest)
    )
    assert {r.currency for r in stripe_refunds} == {currency.lower()}
    assert balances(payer) == (0, 0)
    assert failures() == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_dispute_opened_then_lost_through_the_signed_webhook(payer, api, currency):
    recharge = paid(payer, currency)
    wallet_adjust(user=payer, coins=-400, reason="spent (stand-in)", actor=None)
    body = dispute(recharge)
    opened = event_payload("charge.dispute.created", body)
    assert post_event(api, opened).status_code == 200
    assert post_event(api, opened).status_code == 200  # redelivered
    assert balances(payer) == (0, -400)
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.DISPUTED
    assert recharge.amount_refunded == recharge.price
    assert recharge.coins_refunded == 1000
    lost = event_payload("charge.dispute.closed", {**body, "status": "lost"})
    answer = post_event(api, lost)
    assert answer.status_code == 200, answer.content
    assert answer.json()["result"] == "closed (lost)"
    assert LedgerTransaction.objects.filter(kind="dispute").count() == 1
    assert balances(payer) == (0, -400)
    assert failures() == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_partial_dispute_then_won_gives_the_coins_back(payer, api, currency):
    recharge = paid(payer, currency)
    half = gateway.to_minor(recharge.price) // 2
    body = dispute(recharge, amount=half)
    assert post_event(api, event_payload("charge.dispute.created", body)).status_code == 200
    recharge.refresh_from_db()
    assert recharge.amount_refunded == gateway.from_minor(half, currency)
    assert recharge.coins_refunded == 500
    assert balances(payer) == (500, 0)
    won = event_payload("charge.dispute.closed", {**body, "status": "won"})
    assert post_event(api, won).status_code == 200
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.amount_refunded == Money(0, currency)
    assert recharge.coins_refunded == 0
    assert balances(payer) == (1000, 0)
    assert failures() == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_refund_made_in_the_stripe_dashboard_arrives_by_webhook(payer, api, currency):
    recharge = paid(payer, currency)
    assert recharge.payment_intent
    intent = gateway.payment_intent_retrieve(recharge.payment_intent)
    third = gateway.to_minor(recharge.price) // 3
    # What staff clicking "Refund" in Stripe's dashboard does (no metadata of ours).
    outside = gateway.client().v1.refunds.create(
        params={"payment_intent": recharge.payment_intent, "amount": third}
    )
    charge = {
        "id": intent.latest_charge,
        "object": "charge",
        "payment_intent": recharge.payment_intent,
        "amount": gateway.to_minor(recharge.price),
        "amount_refunded": third,
        "currency": currency.lower(),
        "refunded": False,
    }
    answer = post_event(api, event_payload("charge.refunded", charge))
    assert answer.status_code == 200, answer.content
    assert answer.json()["result"] == "1 refunds applied"
    row = RechargeRefund.objects.get(stripe_id=outside.id)
    assert row.source == RefundSource.STRIPE
    assert row.amount == gateway.from_minor(third, currency)
    assert row.coins == 333  # pro rata, rounded
    recharge.refresh_from_db()
    assert recharge.amount_refunded == row.amount
    assert recharge.coins_refunded == 333
    assert balances(payer) == (667, 0)
    assert failures() == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_reconciliation_applies_an_outside_refund(payer, currency):
    recharge = paid(payer, currency)
    outside = gateway.client().v1.refunds.create(
        params={"payment_intent": recharge.payment_intent}  # the whole payment
    )
    run = payments_reconcile()
    assert run.status == "done", run.error
    assert run.error == ""
    row = RechargeRefund.objects.get(stripe_id=outside.id)
    assert row.coins == 1000
    assert row.amount == recharge.price
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.amount_refunded == row.amount
    assert balances(payer) == (0, 0)
    assert not Discrepancy.objects.filter(object_id=outside.id).exists()
    assert failures() == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_self_refund_and_the_purchases_page(payer, currency):
    recharge = paid(payer, currency)
    kept = paid(payer, currency, coins=2000)
    client = client_for(payer)
    answer = client.post(f"/api/v1/recharges/{recharge.pk}/refund/", **idem())
    assert answer.status_code == 201, answer.content
    assert answer.json()["refund"]["amount"] == {
        "amount": PRICE_OF_1000[currency],
        "currency": currency,
    }
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.amount_refunded == recharge.price
    assert balances(payer) == (2000, 0)
    client.force_login(payer)
    page = client.get("/wallet/purchases/")
    assert page.status_code == 200
    # The month's net spend is the purchase that was kept, in its own currency.
    assert str(kept.price.amount) in page.content.decode()
    assert failures() == []


# --- A bug inside the webhook is ours: 500, logged, and a discrepancy -------------------------


def test_an_error_applying_a_verified_event_is_a_500_and_a_discrepancy(
    payer, api, monkeypatch, caplog
):
    recharge = paid(payer, "EUR")
    body = dispute(recharge)
    payload = event_payload("charge.dispute.created", body)
    event_id = json.loads(payload)["id"]

    def broken(obj):
        raise TypeError("unsupported operand type(s) for -: 'Money' and 'Money'")

    monkeypatch.setitem(webhook_services.HANDLERS, "charge.dispute.created", broken)
    with caplog.at_level(logging.ERROR, logger="wallets.services.webhooks"):
        answer = post_event(api, payload)
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "webhook_processing_failed"
    assert any(event_id in r.getMessage() for r in caplog.records)
    stored = StripeEvent.objects.get(event_id=event_id)
    assert stored.processed_at is None
    assert stored.result.startswith("failed: TypeError")
    assert balances(payer) == (1000, 0)  # nothing half-applied

    run = payments_reconcile()
    rows = Discrepancy.objects.filter(kind="webhook_event_failed", object_id=event_id)
    assert rows.count() == 1
    assert "TypeError" in rows.get().found
    assert run.counts["failed_events"] >= 1

    # Fixed and redelivered by Stripe: applied once.
    monkeypatch.undo()
    assert post_event(api, payload).status_code == 200
    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.result == "clawed back"
    assert balances(payer) == (0, 0)
    assert failures() == []


@pytest.mark.django_db
def test_a_body_that_is_not_an_event_is_still_a_400(api):
    payload = json.dumps({"id": "evt_x", "object": "event"}).encode()  # no type, no data
    answer = post_event(api, payload)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation_error"
    assert not StripeEvent.objects.filter(event_id="evt_x").exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_migration_moves_existing_rows_to_the_purchase_currency():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("wallets", "0005_recharge_client_key")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()  # back to where every other test expects
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    user = UserFactory()
    OldRecharge = old_apps.get_model("wallets", "Recharge")
    OldRefund = old_apps.get_model("wallets", "RechargeRefund")
    # What main wrote: EUR and GBP purchases with amount_refunded in USD.
    untouched = OldRecharge.objects.create(
        user_id=user.pk, coins=1000, price=Money("13.30", "EUR"), payment_intent="pi_mig_1"
    )
    self_refunded = OldRecharge.objects.create(
        user_id=user.pk,
        coins=1000,
        price=Money("11.50", "GBP"),
        payment_intent="pi_mig_2",
        status="refunded",
        coins_refunded=1000,
        amount_refunded=Money("11.50", "GBP"),
    )
    won_back = OldRecharge.objects.create(
        user_id=user.pk,
        coins=1000,
        price=Money("13.30", "EUR"),
        payment_intent="pi_mig_3",
        amount_refunded=Money("0", "USD"),
    )
    for source in ("dispute", "dispute_won"):
        OldRefund.objects.create(
            recharge_id=won_back.pk,
            stripe_id="dp_mig",
            source=source,
            amount=Money("13.30", "EUR"),
            coins=1000,
        )
    executor = MigrationExecutor(connection)
    executor.migrate(latest)
    rows = {r.pk: r for r in Recharge.objects.filter(user=user)}
    assert rows[untouched.pk].amount_refunded == Money(0, "EUR")
    assert rows[self_refunded.pk].amount_refunded == Money("11.50", "GBP")
    assert rows[won_back.pk].amount_refunded == Money(0, "EUR")
