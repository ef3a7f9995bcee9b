"""Issue 17 item 1: a recharge killed before, during or after each of its atomic phases.

``recharge_create`` (wallets/services/purchase.py) commits the Recharge (``creating``) and the
idempotency record first, calls Stripe outside any transaction (customer, PaymentIntent
create, its id written, confirm), then records Stripe's answer in a second transaction. Each
test kills the request at one point (an exception standing for the process dying: what was
committed stays, what was not rolls back, what Stripe did stays) and then brings it to an end
the three ways the house does: the client's retry with the same Idempotency-Key, the
finisher of abandoned recharges, reconciliation. Every ending must conserve money: no
payment without its coins, no coins without a payment, nothing credited twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

import pytest
import stripe
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord, User
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
from wallets.services import payments_reconcile, recharges_finish_abandoned, wallet_get
from wallets.services import purchase as purchase_module

BODY = {"coins": 700, "currency": "USD", "payment_method": "pm_card_visa"}


class Crash(Exception):
    """The web process dying at this point."""


def _viewer() -> User:
    return cast(User, UserFactory(username=f"viewer-{uuid.uuid4().hex[:16]}"))


def _post(api: APIClient, key: str, body: dict | None = None):
    return api.post("/api/v1/recharges/", body or BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _post_and_die(api: APIClient, key: str) -> None:
    with pytest.raises(Crash):
        _post(api, key)


def _kill_at(monkeypatch, target, name: str, *, after: bool = False) -> None:
    """Make ``target.name`` kill the request once: before it runs, or after it ran (Stripe
    did the work; the answer never reached us)."""
    real = getattr(target, name)
    state = {"armed": True}

    def dying(*args, **kwargs):
        if not state["armed"]:
            return real(*args, **kwargs)
        state["armed"] = False
        if after:
            real(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(target, name, dying)


def _intents_of(user: User) -> list:
    """The user's PaymentIntents at Stripe (by their customer: localstripe is shared by the
    test processes, whose user ids repeat)."""
    customer = StripeCustomer.objects.filter(user=user).first()
    if customer is None:
        return []
    since = timezone.now() - timedelta(hours=1)
    return [i for i in gateway.payment_intents_since(since) if i.customer == customer.customer_id]


def _assert_conserved(user: User, *, paid: int) -> None:
    """``paid`` payments succeeded at Stripe, each credited exactly once, nothing else."""
    succeeded = [i.id for i in _intents_of(user) if i.status == "succeeded"]
    assert len(succeeded) == paid
    credited = Recharge.objects.filter(user=user, status=RechargeStatus.SUCCEEDED)
    assert sorted(str(pi) for pi in credited.values_list("payment_intent", flat=True)) == sorted(
        succeeded
    )
    credits = LedgerTransaction.objects.filter(
        kind=TransactionKind.RECHARGE, idempotency_key__in=[f"recharge:{pi}" for pi in succeeded]
    )
    assert credits.count() == paid
    assert wallet_get(user=user).balance == sum(r.coins for r in credited)
    call_command("verify_ledger")  # SystemExit (non-zero) when an invariant breaks


def _abandon(user: User) -> None:
    """The client never comes back: the finisher runs once the recharge is old enough."""
    Recharge.objects.filter(user=user).update(created_at=timezone.now() - timedelta(hours=1))
    recharges_finish_abandoned()


def _the_recharge(user: User) -> Recharge:
    return Recharge.objects.get(user=user)


def _record(user: User, key: str) -> IdempotencyRecord | None:
    return IdempotencyRecord.objects.filter(user=user, key=key).first()


# --- Phase 1: the Recharge and the idempotency record, one transaction -----------------------


@pytest.mark.django_db
def test_killed_inside_phase_1_leaves_nothing_and_the_retry_starts_afresh(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, purchase_module, "recharge_row_new", after=True)

    _post_and_die(api, key)

    assert not Recharge.objects.filter(user=user).exists()
    assert _record(user, key) is None  # rolled back together
    assert _intents_of(user) == []
    response = _post(api, key)
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    _assert_conserved(user, paid=1)


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["retry", "finisher"])
def test_killed_after_phase_1_before_stripe(monkeypatch, ending):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, purchase_module, "stripe_customer_get")

    _post_and_die(api, key)

    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING
    assert recharge.payment_intent is None
    assert recharge.client_key == key
    assert _record(user, key).response_status == 0  # committed with the recharge, unfinished
    # The API shows it as pending meanwhile (its documented statuses).
    shown = api.get(f"/api/v1/recharges/{recharge.pk}/").json()
    assert shown["status"] == "pending"
    if ending == "retry":
        response = _post(api, key)
        assert response.status_code == 201
        assert response.json()["id"] == recharge.pk
        assert response.json()["status"] == "succeeded"
        _assert_conserved(user, paid=1)
    else:
        _abandon(user)
        recharge.refresh_from_db()
        assert recharge.status == RechargeStatus.FAILED
        assert recharge.failure_code == "interrupted"
        _assert_conserved(user, paid=0)
        # A retry that comes back after all is told what became of it.
        late = _post(api, key)
        assert late.status_code == 201
        assert late.json()["status"] == "failed"
        assert late.json()["id"] == recharge.pk


# --- Phase 2: Stripe, outside any transaction ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["retry", "finisher"])
def test_killed_during_the_create_the_orphan_intent_is_never_confirmed(monkeypatch, ending):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    # Stripe created the PaymentIntent; its answer (the id) never reached us.
    _kill_at(monkeypatch, gateway, "payment_intent_create", after=True)

    _post_and_die(api, key)

    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING
    assert recharge.payment_intent is None
    [orphan] = _intents_of(user)
    assert orphan.status == "requires_confirmation"  # nobody was charged
    assert orphan.metadata["recharge_id"] == str(recharge.pk)
    if ending == "retry":
        response = _post(api, key)
        assert response.json()["status"] == "succeeded"
        # Real Stripe hands the same PaymentIntent back (same idempotency key); localstripe
        # makes a second one. Either way exactly one is paid, and it is the recorded one.
        assert response.json()["payment_intent"] == _the_recharge(user).payment_intent
        _assert_conserved(user, paid=1)
    else:
        _abandon(user)
        assert _the_recharge(user).status == RechargeStatus.FAILED
        _assert_conserved(user, paid=0)
    payments_reconcile()  # reconciliation sees the orphan and opens nothing, credits nothing
    _assert_conserved(user, paid=1 if ending == "retry" else 0)


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["retry", "finisher", "reconcile"])
def test_killed_after_the_intent_was_recorded_before_the_confirm(monkeypatch, ending):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, gateway, "payment_intent_confirm")

    _post_and_die(api, key)

    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING
    assert recharge.payment_intent
    assert gateway.payment_intent_retrieve(recharge.payment_intent).status == (
        "requires_confirmation"
    )
    if ending == "retry":
        response = _post(api, key)
        assert response.json()["status"] == "succeeded"
        assert response.json()["payment_intent"] == recharge.payment_intent
        _assert_conserved(user, paid=1)
    elif ending == "finisher":
        _abandon(user)
        assert _the_recharge(user).status == RechargeStatus.FAILED
        # Canceled, so no one can confirm it later.
        assert gateway.payment_intent_retrieve(recharge.payment_intent).status == "canceled"
        _assert_conserved(user, paid=0)
    else:
        payments_reconcile()  # too young for the finisher: left alone, nothing paid
        assert _the_recharge(user).status == RechargeStatus.CREATING
        _assert_conserved(user, paid=0)


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["retry", "finisher", "reconcile"])
def test_killed_after_stripe_confirmed_before_phase_3(monkeypatch, ending):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, gateway, "payment_intent_confirm", after=True)

    _post_and_die(api, key)

    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING
    assert gateway.payment_intent_retrieve(recharge.payment_intent).status == "succeeded"
    assert wallet_get(user=user).balance == 0  # paid, not credited yet: somebody must
    if ending == "retry":
        response = _post(api, key)
        assert response.json()["status"] == "succeeded"
        assert response.json()["payment_intent"] == recharge.payment_intent
    elif ending == "finisher":
        _abandon(user)
    else:
        payments_reconcile()
    assert _the_recharge(user).status == RechargeStatus.SUCCEEDED
    _assert_conserved(user, paid=1)
    # Every other ending afterwards finds nothing left to do.
    payments_reconcile()
    _abandon(user)
    if ending != "retry":
        assert _post(api, key).json()["status"] == "succeeded"
    _assert_conserved(user, paid=1)


# --- Phase 3: Stripe's answer recorded, one transaction --------------------------------------


@pytest.mark.django_db
def test_killed_inside_phase_3_rolls_the_record_back_and_the_retry_credits_once(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, purchase_module, "recharge_apply_success", after=True)

    _post_and_die(api, key)

    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING  # the credit rolled back with it
    assert wallet_get(user=user).balance == 0
    response = _post(api, key)
    assert response.json()["status"] == "succeeded"
    _assert_conserved(user, paid=1)


@pytest.mark.django_db
def test_killed_after_phase_3_the_retry_answers_without_asking_stripe_again(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, purchase_module, "_recharge_answer")

    _post_and_die(api, key)

    assert _the_recharge(user).status == RechargeStatus.SUCCEEDED
    assert _record(user, key).response_status == 0  # the answer was lost
    confirms = []
    monkeypatch.setattr(gateway, "payment_intent_confirm", lambda **kw: confirms.append(kw))
    response = _post(api, key)
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert response.json()["client_secret"]
    assert confirms == []
    again = _post(api, key)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == response.json()
    _assert_conserved(user, paid=1)


# --- Stripe unreachable: 503, the recharge waits at its recovery point -----------------------


def _unreachable(*args, **kwargs):
    raise stripe.APIConnectionError("Connection refused (localstripe stopped)")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "call", ["customer_create", "payment_intent_create", "payment_intent_confirm"]
)
def test_stripe_away_answers_503_with_retry_after_and_the_retry_goes_on(monkeypatch, call):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    real = getattr(gateway, call)
    monkeypatch.setattr(gateway, call, _unreachable)

    refused = _post(api, key)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "payment_provider_unavailable"
    assert set(refused.json()["error"]) == {"code", "message", "fields"}
    assert int(refused["Retry-After"]) > 0
    recharge = _the_recharge(user)
    assert recharge.status == RechargeStatus.CREATING
    assert _record(user, key).response_status == 0  # not stored: the retry continues
    monkeypatch.setattr(gateway, call, real)
    # Noted for a few seconds, in which purchases are refused at once (next test).
    assert cache.get(purchase_module.STRIPE_AWAY_KEY)
    cache.delete(purchase_module.STRIPE_AWAY_KEY)  # those seconds have passed
    response = _post(api, key)
    assert response.status_code == 201
    assert response.json()["id"] == recharge.pk
    assert response.json()["status"] == "succeeded"
    _assert_conserved(user, paid=1)


@pytest.mark.django_db
def test_right_after_stripe_was_away_purchases_are_refused_at_once(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    cache.set(purchase_module.STRIPE_AWAY_KEY, 1)

    def no_call(*args, **kwargs):
        raise AssertionError("Stripe must not be asked while it is noted away")

    for name in ("payment_method_fingerprint", "customer_create", "payment_intent_create"):
        monkeypatch.setattr(gateway, name, no_call)
    refused = _post(client_for(user), key)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "payment_provider_unavailable"
    assert int(refused["Retry-After"]) > 0
    assert not Recharge.objects.filter(user=user).exists()
    assert _record(user, key) is None


@pytest.mark.django_db
def test_a_confirm_that_timed_out_after_stripe_charged_is_credited_once(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    real = gateway.payment_intent_confirm

    def charged_then_timed_out(**kwargs):
        real(**kwargs)
        raise stripe.APIConnectionError("Request timed out")

    monkeypatch.setattr(gateway, "payment_intent_confirm", charged_then_timed_out)
    assert _post(api, key).status_code == 503
    monkeypatch.setattr(gateway, "payment_intent_confirm", real)
    cache.delete(purchase_module.STRIPE_AWAY_KEY)

    response = _post(api, key)

    assert response.json()["status"] == "succeeded"
    _assert_conserved(user, paid=1)


@pytest.mark.django_db
def test_the_finisher_leaves_a_recharge_alone_while_stripe_is_away(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, gateway, "payment_intent_confirm", after=True)
    _post_and_die(api, key)
    monkeypatch.setattr(gateway, "payment_intent_retrieve", _unreachable)

    _abandon(user)

    assert _the_recharge(user).status == RechargeStatus.CREATING
    monkeypatch.undo()
    _abandon(user)
    _assert_conserved(user, paid=1)


# --- Keys ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retry_with_another_purchase_under_the_key_is_a_conflict(monkeypatch):
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    _kill_at(monkeypatch, gateway, "payment_intent_confirm")
    _post_and_die(api, key)

    response = _post(api, key, {**BODY, "coins": 800})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert _the_recharge(user).coins == 700
    _assert_conserved(user, paid=0)


@pytest.mark.django_db
def test_a_retry_after_an_answer_replays_it():
    user, key = _viewer(), str(uuid.uuid4())
    api = client_for(user)
    first = _post(api, key)

    again = _post(api, key)

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    _assert_conserved(user, paid=1)


@pytest.mark.django_db(transaction=True)
def test_phase_1_is_committed_before_stripe_is_called(monkeypatch):
    # No test transaction here: what the view does is what production does.
    user, key = _viewer(), str(uuid.uuid4())
    seen = []
    real = gateway.payment_intent_create

    def create(**kwargs):
        connection = transaction.get_connection()
        seen.append(
            (
                connection.in_atomic_block,
                Recharge.objects.filter(pk=kwargs["recharge_id"])
                .values_list("status", flat=True)
                .first(),
                _record(user, key).response_status,
            )
        )
        return real(**kwargs)

    monkeypatch.setattr(gateway, "payment_intent_create", create)
    response = _post(client_for(user), key)

    assert response.json()["status"] == "succeeded"
    assert seen == [(False, RechargeStatus.CREATING, 0)]
    _assert_conserved(user, paid=1)
