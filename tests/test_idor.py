"""No IDOR: every object endpoint answers 404 for another user's object and changes nothing."""

import pytest
from djmoney.money import Money

from accounts.tests.factories import UserFactory
from config.celery import app as celery_app
from payouts.models import Payout
from payouts.services import payout_batch_run
from payouts.tests.factories import make_payout_creator
from tests.helpers import client_for, idem
from wallets.models import LedgerTransaction, RechargeStatus, recharge_row_new


@pytest.fixture
def eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def alices_recharge(db):
    alice = UserFactory()
    return recharge_row_new(
        user=alice,
        coins=700,
        price=Money("9.99", "USD"),
        payment_intent="pi_idor_test",
        status=RechargeStatus.SUCCEEDED,
    )


@pytest.fixture
def alices_payout(db, eager):
    creator = make_payout_creator(diamonds=5_000)
    payout_batch_run()
    return Payout.objects.get(creator=creator)


def _assert_404(response):
    assert response.status_code == 404, response.content
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_another_users_recharge_is_404_everywhere(alices_recharge):
    bob = UserFactory()
    api = client_for(bob)
    _assert_404(api.get(f"/api/v1/recharges/{alices_recharge.pk}/"))
    _assert_404(api.post(f"/api/v1/recharges/{alices_recharge.pk}/refund/", {}, **idem()))
    api.force_login(bob, backend="django.contrib.auth.backends.ModelBackend")
    _assert_404(api.get(f"/recharges/{alices_recharge.pk}/receipt/"))
    alices_recharge.refresh_from_db()
    assert alices_recharge.status == RechargeStatus.SUCCEEDED
    assert alices_recharge.coins_refunded == 0


@pytest.mark.django_db
def test_another_creators_payout_is_404_everywhere(alices_payout):
    bob_creator = make_payout_creator()
    api = client_for(bob_creator.user)
    _assert_404(api.get(f"/api/v1/payouts/{alices_payout.pk}/statement/"))
    assert alices_payout.pk not in [p["id"] for p in api.get("/api/v1/payouts/").json()["results"]]
    api.force_login(bob_creator.user, backend="django.contrib.auth.backends.ModelBackend")
    for suffix in ("statement/", "statement.csv", "statement.pdf"):
        _assert_404(api.get(f"/creator/payouts/{alices_payout.pk}/{suffix}"))
    alices_tx = LedgerTransaction.objects.get(idempotency_key=f"payout-created:{alices_payout.pk}")
    _assert_404(api.get(f"/api/v1/payouts/trace/{alices_tx.pk}/"))


@pytest.mark.django_db
def test_the_owner_does_see_them(alices_recharge, alices_payout):
    assert (
        client_for(alices_recharge.user).get(f"/api/v1/recharges/{alices_recharge.pk}/").status_code
        == 200
    )
    owner = client_for(alices_payout.creator.user)
    assert owner.get(f"/api/v1/payouts/{alices_payout.pk}/statement/").status_code == 200
