import uuid
from datetime import timedelta

import pytest
from djmoney.money import Money

from accounts.tests.factories import UserFactory
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
    ReconciliationRun,
)
from wallets.services import (
    advisory_lock,
    coin_debt_write_off,
    payments_reconcile,
    recharge_create,
    recharge_refund,
    wallet_adjust,
)
from wallets.tests.factories import confirm_at_stripe, event_payload, post_event


def failures():
    return [(name, problems) for name, problems in run_checks() if problems]


def accounts(user) -> tuple[Account, Account]:
    wallet = Account.objects.get(kind=AccountKind.WALLET, user=user)
    debt = Account.objects.get(kind=AccountKind.COIN_DEBT, user=user)
    return wallet, debt


def paid(user, coins=1000, currency="USD") -> Recharge:
    recharge = recharge_create(
        user=user, currency=currency, coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    return recharge


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def user(db):
    # Reconcile finds every PaymentIntent in localstripe, which the test processes share: a
    # name no other process can also have (with the same id) keeps their payments off ours.
    return UserFactory(username=f"payer-{uuid.uuid4().hex[:16]}")


def test_refund_after_coins_were_spent_records_debt_and_freezes(user, staff):
    recharge = paid(user, coins=1000)
    wallet_adjust(user=user, coins=-700, reason="spent on gifts (stand-in)", actor=None)
    refund = recharge_refund(recharge=recharge, reason="customer asked", actor=staff)
    assert refund.coins == 1000
    assert (refund.coins_from_wallet, refund.coins_to_debt) == (300, 700)
    wallet, debt = accounts(user)
    assert wallet.balance == 0
    assert debt.balance == -700
    assert wallet.is_frozen
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert recharge.amount_refunded == recharge.price
    assert recharge.payment_intent
    stripe_refunds = gateway.refunds_for_payment_intent(recharge.payment_intent)
    assert [r.amount for r in stripe_refunds] == [gateway.to_minor(recharge.price)]
    assert LedgerTransaction.objects.get(kind="refund").actor == staff
    assert failures() == []
    # Staff write the debt off: the freeze is lifted, the ledger still balances.
    assert coin_debt_write_off(user=user, reason="goodwill", actor=staff) == 700
    wallet, debt = accounts(user)
    assert debt.balance == 0
    assert not wallet.is_frozen
    assert failures() == []


def test_partial_refund_by_coins_is_pro_rata_and_idempotent(user, staff):
    recharge = paid(user, coins=1000)  # USD 14.30
    first = recharge_refund(
        recharge=recharge, coins=250, reason="partial", actor=staff, idempotency_key="k1"
    )
    again = recharge_refund(
        recharge=recharge, coins=250, reason="partial", actor=staff, idempotency_key="k1"
    )
    assert again.pk == first.pk
    assert first.amount == Money("3.58", "USD")
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.coins_refunded == 250
    rest = recharge_refund(recharge=recharge, reason="the rest", actor=staff)
    assert rest.coins == 750
    assert rest.amount == Money("10.72", "USD")
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert accounts(user)[0].balance == 0
    assert RechargeRefund.objects.count() == 2
    assert failures() == []


def test_refund_needs_a_reason_and_a_succeeded_recharge(user, staff):
    from config.errors import DomainError

    pending = recharge_create(user=user, currency="USD", coins=500)
    with pytest.raises(DomainError):
        recharge_refund(recharge=pending, reason="x", actor=staff)
    done = paid(user)
    with pytest.raises(DomainError):
        recharge_refund(recharge=done, reason="  ", actor=staff)
    with pytest.raises(DomainError):
        recharge_refund(recharge=done, coins=5000, reason="too many", actor=staff)
    assert RechargeRefund.objects.count() == 0


def _dispute(recharge, status="needs_response", dispute_id="dp_test_1"):
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": gateway.to_minor(recharge.price),
        "currency": str(recharge.price.currency).lower(),
        "charge": "ch_unknown",
        "payment_intent": recharge.payment_intent,
        "status": status,
    }


def test_dispute_claws_back_and_a_won_dispute_gives_back(user, api):
    recharge = paid(user, coins=1000)
    wallet_adjust(user=user, coins=-400, reason="spent", actor=None)
    opened = event_payload("charge.dispute.created", _dispute(recharge))
    assert post_event(api, opened).status_code == 200
    assert post_event(api, opened).status_code == 200  # redelivery
    wallet, debt = accounts(user)
    assert (wallet.balance, debt.balance, wallet.is_frozen) == (0, -400, True)
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.DISPUTED
    assert recharge.coins_refunded == 1000
    assert failures() == []
    won = event_payload("charge.dispute.closed", _dispute(recharge, status="won"))
    assert post_event(api, won).status_code == 200
    assert post_event(api, won).status_code == 200
    wallet, debt = accounts(user)
    # The debt is settled first, the rest goes back to the wallet; the freeze lifts.
    assert (wallet.balance, debt.balance, wallet.is_frozen) == (600, 0, False)
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.coins_refunded == 0
    assert failures() == []


def test_lost_dispute_closed_without_created_still_claws_back(user, api):
    recharge = paid(user, coins=500)
    lost = event_payload("charge.dispute.closed", _dispute(recharge, "lost", "dp_test_2"))
    assert post_event(api, lost).status_code == 200
    late_created = event_payload("charge.dispute.created", _dispute(recharge, "lost", "dp_test_2"))
    assert post_event(api, late_created).status_code == 200
    assert accounts(user)[0].balance == 0
    assert LedgerTransaction.objects.filter(kind="dispute").count() == 1
    assert failures() == []


# --- Reconciliation -------------------------------------------------------------------------


def test_reconcile_credits_a_lost_webhook_once_and_applies_an_outside_refund(user):
    lost = recharge_create(user=user, currency="EUR", coins=1000)
    confirm_at_stripe(lost.payment_intent)  # paid; the webhook never reached us
    refunded = paid(user, coins=2000)
    outside = gateway.client().v1.refunds.create(
        params={"payment_intent": refunded.payment_intent, "amount": 1430}  # type: ignore[arg-type]
    )  # half of USD 28.60
    run = payments_reconcile()
    assert run.status == "done", run.error
    lost.refresh_from_db()
    refunded.refresh_from_db()
    assert lost.status == RechargeStatus.SUCCEEDED
    assert refunded.coins_refunded == 1000
    assert RechargeRefund.objects.get(stripe_id=outside.id).coins == 1000
    assert accounts(user)[0].balance == 1000 + 2000 - 1000
    assert run.counts["credited"] >= 1
    assert run.counts["refunds_applied"] >= 1
    # A second run (and a late webhook) change nothing.
    again = payments_reconcile()
    assert again.counts.get("credited", 0) == 0
    assert again.counts.get("refunds_applied", 0) == 0
    assert LedgerTransaction.objects.filter(kind="recharge").count() == 2
    assert failures() == []


def test_reconcile_turns_a_mismatch_into_one_discrepancy(user):
    recharge = recharge_create(user=user, currency="USD", coins=1000)
    confirm_at_stripe(recharge.payment_intent)
    # Our row says another price than Stripe charged: never guess, ask staff.
    Recharge.objects.filter(pk=recharge.pk).update(price=Money("99.00", "USD"))
    payments_reconcile()
    payments_reconcile()
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.PENDING
    rows = Discrepancy.objects.filter(object_id=recharge.payment_intent)
    assert [(d.kind, d.status) for d in rows] == [("amount_mismatch", "open")]
    assert not LedgerTransaction.objects.filter(kind="recharge").exists()


def test_reconcile_skips_while_another_run_holds_the_lock(user, settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    import threading

    from django.db import connections

    holding = threading.Event()
    release = threading.Event()

    def hold():
        with advisory_lock("applause:reconcile:payments") as got:
            assert got
            holding.set()
            release.wait(10)
        connections["default"].close()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:
        run = payments_reconcile(window=timedelta(minutes=5))
    finally:
        release.set()
        thread.join()
    assert run.status == "skipped"
    assert ReconciliationRun.objects.filter(status="skipped").count() == 1
