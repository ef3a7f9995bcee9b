"""Race attacks: bursts of 50 parallel requests through the real API views on PostgreSQL.

Each burst starts 50 threads behind a barrier, each with its own APIClient (and so its own
database connection, closed at the end). Whatever the interleaving, successes never exceed
what the balance or the rule allows, and the ledger's invariants hold afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, UserFactory
from config.throttles import RechargeThrottle
from gifts.models import GiftEvent
from gifts.tests.factories import GiftFactory, fund, make_creator
from payouts.models import PayoutMethod
from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeRefund, RechargeStatus
from wallets.services import wallet_get

BURST = 50

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="race tests need PostgreSQL (make test)"
    ),
]


def burst(user, method: str, path: str, bodies, keys) -> list:
    """Send BURST requests at once; returns [(status, json)] in request order."""
    token = AuthToken.objects.create(user=user)[1]
    barrier = threading.Barrier(BURST)

    def one(i: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        headers = {"HTTP_IDEMPOTENCY_KEY": keys[i]} if keys else {}
        try:
            barrier.wait(timeout=30)
            response = getattr(client, method)(path, bodies[i], format="json", **headers)
            return response.status_code, response.json() if response.content else None
        finally:
            connection.close()

    with ThreadPoolExecutor(BURST) as pool:
        return list(pool.map(one, range(BURST)))


def retry_once(user, path: str, body: dict, key: str) -> tuple:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    return response.status_code, response.json() if response.content else None


def same(value) -> list:
    return [value] * BURST


def fresh_keys() -> list[str]:
    return [str(uuid.uuid4()) for _ in range(BURST)]


def ledger_ok() -> None:
    call_command("verify_ledger")  # raises CommandError when an invariant fails


def statuses(answers) -> Counter:
    return Counter(status for status, _ in answers)


# --- Gifts ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("gift_path")  # the SQL function and the Python reference
def test_fifty_copies_of_one_gift_send_one_gift():
    viewer = fund(UserFactory(), 100)
    make_creator("racer")
    GiftFactory(slug="race-rose", coins=10)
    body = {"creator": "racer", "gift": "race-rose"}

    answers = burst(viewer, "post", "/api/v1/gifts/send/", same(body), same(str(uuid.uuid4())))

    assert statuses(answers) == {201: BURST}
    assert len({data["id"] for _, data in answers}) == 1
    assert GiftEvent.objects.filter(sender=viewer).count() == 1
    assert wallet_get(user=viewer).balance == 90
    ledger_ok()


@pytest.mark.usefixtures("gift_path")  # the SQL function and the Python reference
def test_fifty_different_gifts_never_spend_more_than_the_balance():
    viewer = fund(UserFactory(), 100)
    make_creator("racer")
    GiftFactory(slug="race-rose", coins=10)
    body = {"creator": "racer", "gift": "race-rose"}

    answers = burst(viewer, "post", "/api/v1/gifts/send/", same(body), fresh_keys())

    assert statuses(answers) == {201: 10, 402: 40}
    assert {data["error"]["code"] for status, data in answers if status == 402} == {
        "insufficient_funds"
    }
    assert GiftEvent.objects.filter(sender=viewer).count() == 10
    assert wallet_get(user=viewer).balance == 0
    ledger_ok()


# --- Recharges ------------------------------------------------------------------------------


def test_fifty_copies_of_one_recharge_charge_and_credit_once():
    viewer = UserFactory()
    body = {"coins": 500, "currency": "USD", "payment_method": "pm_card_visa"}

    key = str(uuid.uuid4())
    answers = burst(viewer, "post", "/api/v1/recharges/", same(body), same(key))
    # A copy that waited its whole lock wait for the first one (a loaded machine: the first
    # holds the recharge's lock across Stripe's answer) is told 503 service_busy, which
    # documents that the same key is still in flight. A client retries it: so does the test.
    busy = [i for i, (status, data) in enumerate(answers) if status == 503]
    assert all(answers[i][1]["error"]["code"] == "service_busy" for i in busy), answers
    for i in busy:
        answers[i] = retry_once(viewer, "/api/v1/recharges/", body, key)

    assert statuses(answers) == {201: BURST}
    assert len({data["payment_intent"] for _, data in answers}) == 1
    recharge = Recharge.objects.get(user=viewer)
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert wallet_get(user=viewer).balance == 500
    ledger_ok()


def test_fifty_different_recharges_stay_within_the_daily_limit(settings, monkeypatch):
    settings.DAILY_PURCHASE_LIMIT = 1000
    # The purchase throttle (20/hour) would answer most of the burst first: lift it here.
    rates = {**RechargeThrottle.THROTTLE_RATES, "recharge": "1000/min"}
    monkeypatch.setattr(RechargeThrottle, "THROTTLE_RATES", rates)
    viewer = UserFactory()
    body = {"coins": 100, "currency": "USD", "payment_method": "pm_card_visa"}

    answers = burst(viewer, "post", "/api/v1/recharges/", same(body), fresh_keys())

    assert statuses(answers) == {201: 10, 403: 40}
    assert Recharge.objects.filter(user=viewer).count() == 10
    assert wallet_get(user=viewer).balance == 1000
    ledger_ok()


# --- Payout method --------------------------------------------------------------------------


def iban(bank: int) -> str:
    bban = f"{bank:018d}"
    digits = "".join(str(int(ch, 36)) for ch in bban + "DE00")
    return f"DE{98 - int(digits) % 97:02d}{bban}"


def test_fifty_payout_method_changes_leave_one_unverified_method():
    # Every change checks the password: cheap because tests hash with MD5 (conftest.py).
    creator = make_creator("payee")
    PayoutMethod.objects.create(
        creator=creator, rail="manual", account_holder="Payee", iban=iban(1), is_verified=True
    )
    bodies = [
        {"rail": "manual", "account_holder": "Payee", "iban": iban(1000 + i), "password": PASSWORD}
        for i in range(BURST)
    ]

    answers = burst(creator.user, "put", "/api/v1/payouts/method/", bodies, None)

    assert statuses(answers) == {200: BURST}
    method = PayoutMethod.objects.get(creator=creator)
    assert PayoutMethod.objects.filter(creator=creator).count() == 1
    assert method.is_verified is False  # a change of destination always clears it
    assert method.iban in {body["iban"] for body in bodies}


def test_fifty_identical_payout_method_puts_keep_a_verified_method_verified():
    creator = make_creator("steady")
    PayoutMethod.objects.create(
        creator=creator, rail="manual", account_holder="Steady", iban=iban(7), is_verified=True
    )
    body = {"rail": "manual", "account_holder": "Steady", "iban": iban(7), "password": PASSWORD}

    answers = burst(creator.user, "put", "/api/v1/payouts/method/", same(body), None)

    assert statuses(answers) == {200: BURST}
    assert PayoutMethod.objects.get(creator=creator).is_verified is True


# --- Refunds --------------------------------------------------------------------------------


def paid_recharge(viewer, coins: int = 400) -> Recharge:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=viewer)[1]}")
    response = client.post(
        "/api/v1/recharges/",
        {"coins": coins, "currency": "USD", "payment_method": "pm_card_visa"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    return Recharge.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize("one_key", [True, False], ids=["same-key", "different-keys"])
def test_fifty_refunds_of_one_recharge_refund_it_once(one_key):
    viewer = UserFactory()
    recharge = paid_recharge(viewer)
    keys = same(str(uuid.uuid4())) if one_key else fresh_keys()
    path = f"/api/v1/recharges/{recharge.pk}/refund/"

    answers = burst(viewer, "post", path, same({}), keys)

    if one_key:
        assert statuses(answers) == {201: BURST}
    else:
        assert statuses(answers) == {201: 1, 409: BURST - 1}
    assert RechargeRefund.objects.filter(recharge=recharge).count() == 1
    assert len(gateway.refunds_for_payment_intent(recharge.payment_intent)) == 1
    recharge.refresh_from_db()
    assert recharge.coins_refunded == 400
    assert wallet_get(user=viewer).balance == 0
    ledger_ok()


def test_fifty_staff_partial_refunds_never_refund_more_than_was_paid():
    from wallets.services import recharge_refund

    viewer = UserFactory()
    staff = UserFactory(is_staff=True)
    recharge = paid_recharge(viewer, coins=400)
    barrier = threading.Barrier(BURST)

    def one(i: int) -> str:
        try:
            barrier.wait(timeout=30)
            recharge_refund(
                recharge=recharge,
                reason="race",
                actor=staff,
                coins=40,
                idempotency_key=str(uuid.uuid4()),
            )
            return "ok"
        except Exception as exc:
            return type(exc).__name__
        finally:
            connection.close()

    with ThreadPoolExecutor(BURST) as pool:
        outcomes = Counter(pool.map(one, range(BURST)))

    assert outcomes["ok"] == 10, outcomes
    recharge.refresh_from_db()
    assert recharge.coins_refunded == 400
    assert sum(r.coins for r in RechargeRefund.objects.filter(recharge=recharge)) == 400
    assert wallet_get(user=viewer).balance == 0
    ledger_ok()
