"""A crash between Stripe's confirm and our commit: the customer paid, our rows are gone.

Found by ``make chaos`` (SIGKILLed web workers, PostgreSQL restarts mid-recharge): the
PaymentIntent succeeded at Stripe but the Recharge (and on a first purchase the StripeCustomer)
rolled back with the request. Reconciliation rebuilds the recharge from the PaymentIntent's
metadata and credits it exactly once.
"""

import time
import uuid
from datetime import timedelta
from typing import cast

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from tests.helpers import client_for
from wallets import stripe_gateway as gateway
from wallets.models import (
    LedgerTransaction,
    Recharge,
    RechargeStatus,
    StripeCustomer,
    TransactionKind,
)
from wallets.services import payments_reconcile, stripe_customer_get, wallet_get
from wallets.services.recharges import _attempt_marker, custom_price


def _viewer() -> User:
    # localstripe is shared by the test processes, and reconcile finds every lost
    # PaymentIntent in it: a name no other test process can also have (with the same id)
    # keeps one test's lost payments from matching another's user.
    return cast(User, UserFactory(username=f"viewer-{uuid.uuid4().hex[:16]}"))


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
    user = _viewer()
    pi = _paid_intent_lost_to_a_crash(user)
    assert not Recharge.objects.filter(payment_intent=pi).exists()

    payments_reconcile()
    payments_reconcile()

    recharge = Recharge.objects.get(payment_intent=pi)
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.coins == 700
    assert recharge.user == user
    assert recharge.price == Money("10.01", "USD")
    assert wallet_get(user=user).balance == 700


@pytest.mark.django_db
def test_reconcile_does_not_hand_a_payment_to_a_user_whose_customer_differs():
    payer = _viewer()
    other = _viewer()
    StripeCustomer.objects.create(user=other, customer_id="cus_someone_else")
    customer_id = gateway.customer_create(
        user_id=payer.pk, email=payer.email, username=payer.username
    )
    # Metadata naming ``other``, paid by ``payer``'s customer: never credited to ``other``.
    pi = _paid_intent_lost_to_a_crash(other, customer_id=customer_id)

    payments_reconcile()

    assert not Recharge.objects.filter(payment_intent=pi).exists()
    assert wallet_get(user=other).balance == 0


# --- The client retries with the same Idempotency-Key after such a crash ---------------------

BODY = {"coins": 700, "currency": "USD", "payment_method": "pm_card_visa"}


class Crash(Exception):
    """The web process dying after Stripe confirmed, before our commit."""


def _post_then_crash(api: APIClient, key: str, body: dict | None = None) -> None:
    # Everything the request wrote (the recharge, the idempotency record, on a first purchase
    # the StripeCustomer) rolls back; what it did at Stripe stays.
    with pytest.raises(Crash), transaction.atomic():  # noqa: PT012 (the crash is inside the commit)
        response = api.post(
            "/api/v1/recharges/", body or BODY, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert response.status_code == 201, response.content
        raise Crash


def _intents_for_key(user: User, key: str) -> list:
    key_hash = gateway.recharge_client_key_hash(user_id=user.pk, client_key=key)
    since = timezone.now() - timedelta(hours=1)
    return [
        intent
        for intent in gateway.payment_intents_since(since)
        if gateway.get(gateway.get(intent, "metadata"), "client_key_hash") == key_hash
    ]


def _coin_credits(user: User) -> int:
    return LedgerTransaction.objects.filter(
        kind=TransactionKind.RECHARGE,
        idempotency_key__in=[r.ledger_key for r in Recharge.objects.filter(user=user)],
    ).count()


def _assert_credited_once_even_after_reconcile(user: User) -> None:
    assert wallet_get(user=user).balance == 700
    assert _coin_credits(user) == 1
    payments_reconcile()
    assert wallet_get(user=user).balance == 700
    call_command("verify_ledger")


@pytest.mark.django_db
def test_retry_after_a_crash_on_a_first_purchase_charges_once():
    user = _viewer()
    api = client_for(user)
    key = str(uuid.uuid4())
    _post_then_crash(api, key)
    assert not Recharge.objects.filter(user=user).exists()
    assert not StripeCustomer.objects.filter(user=user).exists()
    [paid] = _intents_for_key(user, key)
    assert paid.status == "succeeded"

    response = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert response.json()["payment_intent"] == paid.id
    assert [i.id for i in _intents_for_key(user, key)] == [paid.id]
    recharge = Recharge.objects.get(user=user)
    assert recharge.payment_intent == paid.id
    assert recharge.client_key == key
    assert wallet_get(user=user).balance == 700
    assert _coin_credits(user) == 1
    call_command("verify_ledger")  # SystemExit (non-zero) when an invariant breaks
    # The retry's answer is now the stored one.
    again = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == response.json()


@pytest.mark.django_db
def test_retry_after_reconciliation_rebuilt_the_recharge_returns_that_one():
    user = _viewer()
    stripe_customer_get(user=user)  # an earlier purchase made the customer; it survives
    api = client_for(user)
    key = str(uuid.uuid4())
    _post_then_crash(api, key)
    payments_reconcile()
    rebuilt = Recharge.objects.get(user=user)
    assert rebuilt.status == RechargeStatus.SUCCEEDED
    assert rebuilt.client_key is None
    assert wallet_get(user=user).balance == 700

    response = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 201
    assert response.json()["id"] == rebuilt.pk
    assert response.json()["status"] == "succeeded"
    assert len(_intents_for_key(user, key)) == 1
    assert Recharge.objects.filter(user=user).count() == 1
    assert Recharge.objects.get(pk=rebuilt.pk).client_key == key
    _assert_credited_once_even_after_reconcile(user)


@pytest.mark.django_db
def test_retry_then_reconciliation_credits_once():
    user = _viewer()
    stripe_customer_get(user=user)
    api = client_for(user)
    key = str(uuid.uuid4())
    _post_then_crash(api, key)

    response = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
    payments_reconcile()

    assert response.json()["status"] == "succeeded"
    assert len(_intents_for_key(user, key)) == 1
    assert Recharge.objects.filter(user=user).count() == 1
    assert wallet_get(user=user).balance == 700
    call_command("verify_ledger")


def _unconfirmed_intent_for_key(user: User, key: str):
    customer = stripe_customer_get(user=user)
    key_hash = gateway.recharge_client_key_hash(user_id=user.pk, client_key=key)
    created = gateway.payment_intent_create(
        amount=custom_price(coins=700, currency="USD"),
        customer_id=customer.customer_id,
        user_id=user.pk,
        client_key_hash=key_hash,
        payment_method="pm_card_visa",
        coins=700,
    )
    assert created.status == "requires_confirmation"
    return key_hash, created


@pytest.mark.django_db
def test_retry_after_a_crash_during_the_create_charges_once():
    user = _viewer()
    key = str(uuid.uuid4())
    # The crash came while Stripe created the PaymentIntent, before the marker got its id:
    # recharge_create had noted only the attempt (in the cache, outside the rolled-back
    # transaction). That PaymentIntent was never confirmed, so nobody was charged for it.
    key_hash, orphan = _unconfirmed_intent_for_key(user, key)
    cache.set(_attempt_marker(key_hash), {"at": int(time.time())})

    response = client_for(user).post(
        "/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.json()["status"] == "succeeded"
    statuses = {i.id: i.status for i in _intents_for_key(user, key)}
    assert list(statuses.values()).count("succeeded") == 1
    assert statuses.get(orphan.id, "requires_confirmation") == "requires_confirmation"
    _assert_credited_once_even_after_reconcile(user)


@pytest.mark.django_db
def test_retry_under_a_marker_from_before_ids_were_noted_finds_the_intent_once():
    user = _viewer()
    key = str(uuid.uuid4())
    key_hash, created = _unconfirmed_intent_for_key(user, key)
    cache.set(_attempt_marker(key_hash), 1)

    response = client_for(user).post(
        "/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.json()["status"] == "succeeded"
    assert response.json()["payment_intent"] == created.id
    assert [i.id for i in _intents_for_key(user, key)] == [created.id]
    assert wallet_get(user=user).balance == 700
    call_command("verify_ledger")


@pytest.mark.django_db
def test_retry_after_a_crash_with_another_purchase_under_the_key_is_a_conflict():
    user = _viewer()
    api = client_for(user)
    key = str(uuid.uuid4())
    _post_then_crash(api, key)

    response = api.post(
        "/api/v1/recharges/", {**BODY, "coins": 800}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert len(_intents_for_key(user, key)) == 1
    assert not Recharge.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_retry_without_a_crash_replays_the_first_answer():
    user = _viewer()
    api = client_for(user)
    key = str(uuid.uuid4())
    first = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)

    again = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(_intents_for_key(user, key)) == 1
    assert wallet_get(user=user).balance == 700


@pytest.mark.django_db
def test_retry_fetches_the_noted_intent_by_id_without_searching(monkeypatch):
    user = _viewer()
    stripe_customer_get(user=user)
    api = client_for(user)
    key = str(uuid.uuid4())
    _post_then_crash(api, key)
    key_hash = gateway.recharge_client_key_hash(user_id=user.pk, client_key=key)
    noted = cache.get(_attempt_marker(key_hash))
    [paid] = _intents_for_key(user, key)
    assert noted["pi"] == paid.id

    def no_search(*args, **kwargs):
        raise AssertionError("a retry with a noted PaymentIntent must not list Stripe")

    monkeypatch.setattr(gateway, "customer_payment_intents_since", no_search)
    response = api.post("/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 201
    assert response.json()["payment_intent"] == paid.id
    assert response.json()["status"] == "succeeded"
    assert wallet_get(user=user).balance == 700
    assert _coin_credits(user) == 1
    call_command("verify_ledger")


@pytest.mark.django_db
def test_a_noted_intent_of_another_user_is_not_adopted():
    owner = _viewer()
    owner_customer = stripe_customer_get(user=owner)
    intruder = _viewer()
    stripe_customer_get(user=intruder)
    foreign = gateway.payment_intent_create(
        amount=custom_price(coins=700, currency="USD"),
        customer_id=owner_customer.customer_id,
        user_id=owner.pk,
        client_key_hash="owner-hash",
        payment_method="pm_card_visa",
        coins=700,
    )
    key = str(uuid.uuid4())
    key_hash = gateway.recharge_client_key_hash(user_id=intruder.pk, client_key=key)
    cache.set(_attempt_marker(key_hash), {"at": int(time.time()), "pi": foreign.id})

    response = client_for(intruder).post(
        "/api/v1/recharges/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert response.status_code == 201
    assert response.json()["payment_intent"] != foreign.id
    assert gateway.payment_intent_retrieve(foreign.id).status == "requires_confirmation"
    assert wallet_get(user=intruder).balance == 700
    assert wallet_get(user=owner).balance == 0
