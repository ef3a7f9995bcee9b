"""Payment reconciliation asks Stripe only for what was created since the last clean run (the
window stored on its ``ReconciliationRun``), and localstripe, which refuses the ``created``
filter, is still paged through whole."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import stripe
from django.utils import timezone

from accounts.tests.factories import UserFactory
from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeStatus, ReconciliationRun
from wallets.models.payments import recharge_row_new
from wallets.services import payments_reconcile
from wallets.services.recharges import custom_price
from wallets.services.reconciliation import DEFAULT_WINDOW, reconcile_window_start

pytestmark = pytest.mark.django_db


class Listing:
    """Stands in for Stripe's lists: records the ``since`` each run asked for."""

    def __init__(self, monkeypatch) -> None:
        self.asked: list[datetime] = []
        self.fail = False
        self.intents: list[Any] = []
        monkeypatch.setattr(gateway, "payment_intents_since", self.payment_intents)
        monkeypatch.setattr(gateway, "refunds_since", lambda since: iter(()))

    def payment_intents(self, since: datetime):
        self.asked.append(since)
        if self.fail:
            raise stripe.APIConnectionError("Stripe is away")
        return iter(self.intents)


def test_the_window_moves_only_after_a_clean_run(monkeypatch, settings):
    settings.RECONCILE_OVERLAP_SECONDS = 600
    listing = Listing(monkeypatch)
    overlap = timedelta(seconds=600)

    first = payments_reconcile()
    assert first.status == "done"
    # No clean run before: the last DEFAULT_WINDOW.
    assert first.window_start == first.window_end - DEFAULT_WINDOW
    assert listing.asked[-1] == first.window_start

    second = payments_reconcile()
    assert second.status == "done"
    assert second.window_start == first.window_end - overlap
    assert listing.asked[-1] == second.window_start

    listing.fail = True
    failed = payments_reconcile()
    assert failed.status == "failed"
    listing.fail = False
    after_failure = payments_reconcile()
    # The failed run did not move it: still from the last clean run (the second).
    assert after_failure.window_start == second.window_end - overlap

    # A run with an error on one payment is not clean either.
    listing.intents = [
        gateway.PaymentIntent.from_stripe(
            {"id": "pi_broken", "status": "succeeded", "metadata": {"app": "applause"}},
        )
    ]
    from wallets.services import reconciliation

    def broken(*args, **kwargs):
        raise RuntimeError("one bad payment")

    monkeypatch.setattr(reconciliation, "_reconcile_intent", broken)
    with_error = payments_reconcile()
    assert with_error.status == "done"
    assert with_error.error
    next_run = payments_reconcile()
    assert next_run.window_start == after_failure.window_end - overlap
    # That payment fails again: still not clean, still the same start.
    assert next_run.error
    assert payments_reconcile().window_start == after_failure.window_end - overlap
    assert ReconciliationRun.objects.filter(kind="payments", status="done", error="").count() == 3


def test_a_payment_still_awaited_reaches_back_to_its_recharge(monkeypatch, settings):
    settings.RECONCILE_OVERLAP_SECONDS = 60
    Listing(monkeypatch)
    payments_reconcile()
    user = UserFactory.create()
    now = timezone.now()
    pending = recharge_row_new(
        user=user,
        coins=100,
        price=custom_price(coins=100, currency="EUR"),
        payment_intent="pi_waiting",
        status=RechargeStatus.PENDING,
    )
    Recharge.objects.filter(pk=pending.pk).update(created_at=now - timedelta(hours=5))
    assert reconcile_window_start(now=now) == now - timedelta(hours=5, seconds=60)
    # Never past the longest window, however old the recharge.
    Recharge.objects.filter(pk=pending.pk).update(created_at=now - timedelta(days=30))
    last = ReconciliationRun.objects.get()
    assert reconcile_window_start(now=now) == last.window_end - timedelta(seconds=60)
    Recharge.objects.filter(pk=pending.pk).update(
        created_at=now - DEFAULT_WINDOW + timedelta(minutes=1)
    )
    assert reconcile_window_start(now=now) == now - DEFAULT_WINDOW


class FakeList:
    def __init__(self, objects: list[dict]) -> None:
        self.objects = objects

    def auto_paging_iter(self):
        return iter(self.objects)


class FakeResource:
    def __init__(self, objects: list[dict]) -> None:
        self.objects = objects
        self.params: list[dict] = []

    def list(self, params: dict) -> FakeList:
        self.params.append(params)
        return FakeList(self.objects)


def test_real_stripe_is_asked_for_the_window_and_localstripe_is_filtered_here(settings):
    now = int(time.time())
    objects = [{"id": "old", "created": now - 7200}, {"id": "new", "created": now - 60}]
    since = timezone.now() - timedelta(hours=1)

    settings.STRIPE_API_BASE = "https://api.stripe.com"
    real = FakeResource(objects[1:])  # Stripe filters on its side
    assert [o["id"] for o in gateway._list_since(real, since)] == ["new"]
    assert real.params == [{"limit": 100, "created": {"gte": int(since.timestamp())}}]

    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"  # localstripe: no filter, all pages
    fake = FakeResource(objects)
    assert [o["id"] for o in gateway._list_since(fake, since)] == ["new"]
    assert fake.params == [{"limit": 100}]
