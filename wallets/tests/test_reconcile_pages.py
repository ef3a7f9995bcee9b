"""Payment reconciliation reads the database a page of PaymentIntents at a time: the steady
state (everything agrees) costs a few queries per page, not two per PaymentIntent."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from wallets import stripe_gateway as gateway
from wallets.ledger_checks import run_checks
from wallets.models import LedgerTransaction, Recharge, RechargeStatus
from wallets.services import payments_reconcile
from wallets.services.reconciliation import RECONCILE_PAGE

pytestmark = pytest.mark.django_db

N = 2 * RECONCILE_PAGE + 30


def _listing(monkeypatch, intents) -> None:
    monkeypatch.setattr(gateway, "payment_intents_since", lambda since: iter(intents))
    monkeypatch.setattr(gateway, "refunds_since", lambda since: iter(()))


@pytest.mark.slow
def test_lost_webhooks_are_credited_and_the_rerun_reads_per_page(monkeypatch):
    users = [UserFactory() for _ in range(5)]
    now = int(time.time())
    intents = []
    for i in range(N):
        user = users[i % len(users)]
        recharge = Recharge.objects.create(
            user=user, coins=100, price=1.43, price_currency="USD", payment_intent=f"pi_page_{i}"
        )
        status = "canceled" if i % 10 == 3 else "succeeded"
        intents.append(
            gateway.PaymentIntent.from_stripe(
                {
                    "id": recharge.payment_intent,
                    "object": "payment_intent",
                    "status": status,
                    "amount": 143,
                    "currency": "usd",
                    "created": now,
                    "metadata": {
                        "app": "applause",
                        "recharge_id": str(recharge.pk),
                        "user_id": str(user.pk),
                    },
                    "latest_charge": f"ch_page_{i}",
                },
            )
        )
    # Plus PaymentIntents that are not ours: nothing to do with them.
    intents += [
        gateway.PaymentIntent.from_stripe(
            {"id": f"pi_other_{i}", "status": "succeeded", "metadata": {}}
        )
        for i in range(7)
    ]
    _listing(monkeypatch, intents)

    first = payments_reconcile()

    canceled = sum(1 for i in range(N) if i % 10 == 3)
    assert first.counts["credited"] == N - canceled
    assert first.counts["marked_failed"] == canceled
    assert Recharge.objects.filter(status=RechargeStatus.SUCCEEDED).count() == N - canceled
    assert LedgerTransaction.objects.filter(kind="recharge").count() == N - canceled

    with CaptureQueriesContext(connection) as queries:
        again = payments_reconcile()

    assert again.counts.get("credited", 0) == 0
    assert again.counts.get("marked_failed", 0) == 0
    assert again.counts["payment_intents"] == N + 7
    # The receipts of the first run's set-based pages (their tasks never ran here) are
    # written by this one, a few statements for all of them (the first page went one by one,
    # each credit with its receipt: its users had no wallet yet).
    from notifications.models import OutboxEmail

    assert again.counts["receipts_written"] > 0
    assert OutboxEmail.objects.filter(event__startswith="recharge_receipt:").count() == (
        N - canceled
    )
    pages = -(-(N + 7) // RECONCILE_PAGE)
    # Two reads per page, plus the run's own bookkeeping and the receipts (a handful each,
    # whatever N is).
    assert len(queries) <= 2 * pages + 20, [q["sql"][:80] for q in queries.captured_queries]
    assert {name: f for name, f in run_checks() if f} == {}


def test_refunds_are_read_a_page_at_a_time_and_only_disagreements_are_looked_at(monkeypatch):
    from djmoney.money import Money

    from wallets.models import Discrepancy, RechargeRefund

    user = UserFactory()
    n = 2 * RECONCILE_PAGE + 11
    refunds = []
    for i in range(n):
        recharge = Recharge.objects.create(
            user=user,
            coins=100,
            price=Money("1.43", "GBP"),
            amount_refunded=Money("1.43", "GBP"),
            payment_intent=f"pi_refunded_{i}",
            status=RechargeStatus.REFUNDED,
        )
        RechargeRefund.objects.create(
            recharge=recharge,
            stripe_id=f"re_page_{i}",
            source="refund",
            amount=Money("1.43", "GBP"),
            coins=100,
        )
        refunds.append(
            gateway.Refund.from_stripe(
                {
                    "id": f"re_page_{i}",
                    "object": "refund",
                    "status": "succeeded",
                    # The last one's amount differs from what we applied: staff look at it.
                    "amount": 143 if i < n - 1 else 100,
                    "currency": "gbp",
                    "payment_intent": f"pi_refunded_{i}",
                }
            )
        )
    monkeypatch.setattr(gateway, "payment_intents_since", lambda since: iter(()))
    monkeypatch.setattr(gateway, "refunds_since", lambda since: iter(refunds))

    with CaptureQueriesContext(connection) as queries:
        run = payments_reconcile()

    assert run.counts["refunds"] == n
    assert run.counts["discrepancies"] == 1
    assert Discrepancy.objects.get().kind == "refund_amount_mismatch"
    pages = -(-n // RECONCILE_PAGE)
    # One read per page, the discrepancy (a few), the run's own bookkeeping.
    assert len(queries) <= pages + 20, [q["sql"][:80] for q in queries.captured_queries]
